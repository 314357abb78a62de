#!/usr/bin/env python3
"""boto3 as an independent S3 client for Coffer's S3 tests (adapters/tests/storage_s3.rs).

Usage: s3_boto3.py ENDPOINT BUCKET OPS_JSON, credentials and region from the usual AWS_*
environment variables. OPS_JSON is a list of operations, run in order:
  {"op": "get", "key": K, "file": F}             download K into F
  {"op": "put", "key": K, "file": F}             one PutObject of F's bytes
  {"op": "put_multipart", "key": K, "file": F, "part_size": N}
                                                 an explicit multipart upload, N-byte parts
  {"op": "head", "key": K}                       the object's size and ETag
  {"op": "list_uploads"}                         ListMultipartUploads (error code if refused)
Prints a JSON list with one result per operation.
"""

import hashlib
import json
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError


def main():
    endpoint, bucket, ops = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        config=Config(
            s3={"addressing_style": "path"},
            signature_version="s3v4",
            retries={"max_attempts": 1},
        ),
    )
    results = []
    for op in ops:
        kind = op["op"]
        if kind == "get":
            body = s3.get_object(Bucket=bucket, Key=op["key"])["Body"].read()
            with open(op["file"], "wb") as f:
                f.write(body)
            results.append({"size": len(body), "sha256": hashlib.sha256(body).hexdigest()})
        elif kind == "put":
            with open(op["file"], "rb") as f:
                body = f.read()
            s3.put_object(Bucket=bucket, Key=op["key"], Body=body)
            results.append({"size": len(body)})
        elif kind == "put_multipart":
            with open(op["file"], "rb") as f:
                body = f.read()
            size = op["part_size"]
            upload = s3.create_multipart_upload(Bucket=bucket, Key=op["key"])
            upload_id = upload["UploadId"]
            parts = []
            for number, start in enumerate(range(0, len(body), size), start=1):
                answer = s3.upload_part(
                    Bucket=bucket,
                    Key=op["key"],
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=body[start : start + size],
                )
                parts.append({"PartNumber": number, "ETag": answer["ETag"]})
            s3.complete_multipart_upload(
                Bucket=bucket,
                Key=op["key"],
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
            results.append({"size": len(body), "parts": len(parts)})
        elif kind == "head":
            head = s3.head_object(Bucket=bucket, Key=op["key"])
            results.append({"size": head["ContentLength"], "etag": head["ETag"]})
        elif kind == "list_uploads":
            try:
                answer = s3.list_multipart_uploads(Bucket=bucket)
                results.append({"uploads": [u["Key"] for u in answer.get("Uploads", [])]})
            except ClientError as e:
                results.append({"error": e.response["Error"]["Code"]})
        else:
            raise SystemExit(f"unknown operation {kind!r}")
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
