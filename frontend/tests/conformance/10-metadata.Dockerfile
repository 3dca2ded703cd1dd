FROM nginx:1.27
MAINTAINER Jane Doe <jane@example.com>
LABEL org.opencontainers.image.title="demo app" version=1.0 "quoted key"=value
EXPOSE 80 443/tcp 53/udp 8000-8002
VOLUME ["/data", "/logs"]
VOLUME /cache /tmp/x
USER www-data:www-data
STOPSIGNAL SIGTERM
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
HEALTHCHECK --interval=30s --timeout=3s --start-period=1m --start-interval=5s --retries=3 \
    CMD curl -f http://localhost/ || exit 1
HEALTHCHECK NONE
CMD nginx -g "daemon off;"
ENTRYPOINT ["/docker-entrypoint.sh"]
CMD ["nginx", "-g", "daemon off;"]
WORKDIR relative
