FROM busybox AS deps
RUN echo deps > /deps.txt

FROM python:3.12-slim
WORKDIR /app
ARG PIP_CACHE=/root/.cache/pip
RUN --mount=type=cache,target=${PIP_CACHE},sharing=locked,id=pip \
    --mount=type=bind,source=requirements.txt,target=requirements.txt \
    pip install -r requirements.txt
RUN --mount=type=bind,from=deps,source=/deps.txt,target=/tmp/deps.txt,rw \
    --mount=type=tmpfs,target=/scratch,size=128m \
    cat /tmp/deps.txt
RUN --mount=type=secret,id=npmrc,target=/root/.npmrc,mode=0440,uid=1000,gid=1000,required=true \
    --mount=type=secret,id=aws,env=AWS_ACCESS_KEY_ID \
    --mount=type=ssh,id=github \
    --mount=type=cache,target=node_modules,from=deps,source=/,uid=1000,mode=0700 \
    npm ci
RUN --network=none --security=sandbox ["python3", "-c", "print(1)"]
RUN --network=host --security=insecure ip addr
