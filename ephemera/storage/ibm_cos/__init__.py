"""The ibm_cos storage backend: IBM Cloud Object Storage via ibm-cos-sdk (HMAC or IAM).

It shares every operation with the aws_s3 backend; ``put_if_absent`` uses claim
objects (:mod:`ephemera.storage.claims`) because IBM COS does not document
``If-None-Match: *`` on PUT.
"""
