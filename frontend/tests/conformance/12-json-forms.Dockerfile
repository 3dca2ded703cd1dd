FROM busybox
# Not valid JSON (single quotes): used as a shell-form command, with a warning.
CMD ['sh', '-c', 'echo hi']
ENTRYPOINT ["sh", "-c"]
RUN ["echo", "exec", "form"]
RUN [ "echo", "spaced" ]
RUN echo [not json]
CMD ["a\"quoted\"", "\u00e9", "back\\slash"]
