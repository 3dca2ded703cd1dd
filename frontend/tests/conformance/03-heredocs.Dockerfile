# syntax=docker/dockerfile:1
FROM busybox
ARG USER=world
RUN <<EOF
echo "hello $USER"
apk add --no-cache git
EOF
RUN <<-EOT
	echo tabs are stripped
	EOT
RUN <<EOF python3
print("interpreter form")
EOF
RUN <<EOF
#!/usr/bin/env python3
print("run as a program")
EOF
RUN cat <<A >/a.txt && cat <<'B' >/b.txt
first $USER
A
second $USER
B
COPY <<EOF /etc/app.conf
user=$USER
EOF
COPY <<"EOF" /etc/raw.conf
user=$USER
EOF
COPY <<one <<two /etc/multi/
1
one
2
two
# A heredoc opened on a continued line.
RUN --network=none \
    <<EOF
ls /
EOF
