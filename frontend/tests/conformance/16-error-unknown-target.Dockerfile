# kiln-test: --target=biuld
FROM busybox AS build
FROM busybox AS test
