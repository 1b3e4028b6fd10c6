# streamfuse worker image: one image, the role is chosen by the command.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY streams ./streams
COPY agents ./agents
COPY models ./models
COPY data ./data
RUN pip install --no-cache-dir .
ENTRYPOINT ["streamfuse"]
CMD ["worker", "--roles", "recognize,infer,fuse,monitor"]
