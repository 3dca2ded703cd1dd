FROM busybox
# A comment line inside a continuation is dropped; a blank line warns.
RUN apt-get update && \
# this comment is not part of the command
    apt-get install -y \
        curl \

        git
RUN echo one \
    two\
three
ENV A=1 \
    B="two words" \
    C=3
# Continuation whose next line is only a comment, then the rest.
LABEL x=1 \
# note
      y=2
RUN echo end \
