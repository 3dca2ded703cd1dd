FROM alpine:3 AS base
WORKDIR /srv
COPY --parents ./src/./pkg/**/*.go ./
COPY --exclude=*.test --exclude=!keep.test --link bin/ /usr/local/bin/
COPY --chmod=0755 entrypoint.sh /
COPY --chmod=a+x,go-w scripts/ /scripts/
COPY ["file with spaces.txt", "other file", "/data/"]
COPY --chown=app:app . .
FROM busybox AS final
COPY --from=base /srv /copy-of-srv
