"""The core every stage stands on: config, the clock, the database and its models, the broker,
logs and metrics, the policy's vocabulary, and the reading of mail (headers, the Received chain,
times and addresses). It imports no stage."""

__version__ = "0.1.0"
