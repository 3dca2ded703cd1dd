# kiln-test: --target=release
FROM golang:1.22 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -o /out/app ./cmd/app

FROM build AS test
RUN go test ./...

FROM busybox AS unused
RUN echo never built

FROM scratch AS release
COPY --from=build /out/app /app
COPY --from=0 /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/
ENTRYPOINT ["/app"]

FROM release AS debug
COPY --from=busybox:latest /bin/busybox /busybox
