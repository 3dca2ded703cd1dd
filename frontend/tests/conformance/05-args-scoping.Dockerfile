# kiln-test: --build-arg=VERSION=3 --build-arg=HTTP_PROXY=http://proxy:3128 --build-arg=UNUSED=1
ARG BASE=alpine
ARG VERSION=1
FROM ${BASE}:${VERSION} AS first
# A global ARG is visible in a stage only when redeclared.
RUN echo "version=$VERSION"
ARG VERSION
RUN echo "version=$VERSION"
ARG LOCAL=local
ENV LOCAL=from-env
RUN echo $LOCAL
ARG TARGETPLATFORM
ARG BUILDARCH
RUN echo $TARGETPLATFORM $BUILDARCH
FROM first AS second
# ARGs of the base stage are inherited.
RUN echo $LOCAL $VERSION
