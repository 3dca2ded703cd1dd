FROM busybox
RUN echo ok
CPOY a /a
