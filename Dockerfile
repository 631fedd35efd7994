# relay image: same shape as centrifugo/centrifugo:v6 (config at /centrifugo/config.json, port 8000).
FROM python:3.11-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY relay ./relay
RUN pip install --no-cache-dir Cython setuptools wheel \
    && RELAY_BUILD_EXTENSION=yes pip wheel --no-cache-dir --no-deps -w /wheels .

FROM python:3.11-slim
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
WORKDIR /centrifugo
EXPOSE 8000
ENTRYPOINT ["relay"]
CMD ["--config", "/centrifugo/config.json"]
