FROM debian:bookworm-slim
WORKDIR /opt
ADD rootfs.tar.gz /
ADD --unpack=false vendor.tar.xz ./vendor/
ADD --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d \
    https://mirrors.edge.kernel.org/pub/software/scm/git/git-2.45.0.tar.gz /src/
ADD https://example.com/download?file=x /downloads/
ADD --keep-git-dir=true https://github.com/moby/buildkit.git#v0.14.0:frontend/dockerfile /buildkit/
ADD git@github.com:example/private.git /private
ADD --chown=1000:1000 --chmod=u=rwX,go=rX --link --exclude=*.md --exclude=docs/ conf/ /etc/app/
ADD <<EOF /etc/motd
welcome
EOF
