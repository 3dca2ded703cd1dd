FROM busybox
ARG OTHER=fallback
ARG EMPTY=
ENV V=/usr/local/lib/libfoo.so.1
LABEL nested="${MISSING:-${OTHER}}" \
      colon_empty="${EMPTY:-d}" dash_empty="${EMPTY-d}" \
      plus="${V:+set}" plus_unset="${NOPE+set}" \
      short_prefix="${V#*/}" long_prefix="${V##*/}" \
      short_suffix="${V%.*}" long_suffix="${V%%.*}" \
      replace_one="${V/lib/LIB}" replace_all="${V//lib/LIB}" \
      required="${V:?must be set}"
ENV Q1='single $V' Q2="double $V" Q3=esc\ aped\$V
WORKDIR /opt/${OTHER}/$EMPTY
EXPOSE ${PORT:-8080}/tcp 9000-9001/udp
