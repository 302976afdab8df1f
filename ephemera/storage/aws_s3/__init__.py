"""The aws_s3 storage backend: AWS S3 or any S3-compatible endpoint (MinIO, ...), via boto3.

``backend.S3CompatibleStorage`` holds every operation and is shared with the
``ibm_cos`` backend, whose SDK (ibm-cos-sdk) has the same client API.
"""
