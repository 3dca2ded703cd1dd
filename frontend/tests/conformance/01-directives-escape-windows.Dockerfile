# escape=`
# syntax=docker/dockerfile:1
# check=skip=WorkdirRelativePath

FROM busybox
# With ` as the escape character, back-slashes are ordinary: Windows-style paths work.
WORKDIR C:\app\bin
ENV DIR=C:\tools SEP=`$ LIT="a`"b"
RUN echo C:\temp\file.txt && `
    echo continued `
    with backticks
LABEL path="C:\Program Files\x"
