FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends git && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY . .
RUN pip install --no-cache-dir uv && uv pip install --system --no-cache -e .
ENV PYTHONUNBUFFERED=1
# 8000: bin/web (granian: pages and API); 8001: daphne (websockets). See compose.yaml.
EXPOSE 8000 8001
