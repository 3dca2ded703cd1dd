# kiln-test: --platform=linux/arm64
ARG TARGETARCH
FROM --platform=$BUILDPLATFORM golang:1.22 AS build
ARG TARGETOS TARGETARCH
RUN GOOS=$TARGETOS GOARCH=$TARGETARCH go build -o /out/app .
FROM --platform=linux/arm/v7 busybox
COPY --from=build /out/app /app
RUN echo $TARGETARCH
