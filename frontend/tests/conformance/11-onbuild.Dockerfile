FROM busybox AS parent
ONBUILD COPY . /app/src
ONBUILD RUN make -C /app/src
ONBUILD RUN <<EOF
echo from a heredoc trigger
EOF

FROM parent AS child
RUN echo child

FROM onbuild-base
LABEL after=triggers
COPY --from=child /built /built
