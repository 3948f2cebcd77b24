"""A lake writer that dies in the middle of putting a partition to object storage (test_object_storage.py):
every part of the multipart upload is sent, then the process is killed before the upload is completed.
Usage: python s3_crash_writer.py LAKE_URL"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import polars as pl
import s3fs

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout

from lake_assets.storage import lake as lake_module  # noqa: E402

original = s3fs.S3FileSystem._call_s3


async def dying(self, method, *args, **kwargs):  # type: ignore[no-untyped-def]
    if method == "complete_multipart_upload":
        print("parts sent; dying before completion", flush=True)
        os._exit(9)
    return await original(self, method, *args, **kwargs)


s3fs.S3FileSystem._call_s3 = dying  # type: ignore[method-assign]
lake_module.S3_PART_BYTES = 5 * 2**20  # S3's smallest part: the 16 MB partition goes up in 4 parts
big = pl.DataFrame({"x": np.random.default_rng(0).random(2_000_000)})
lake_module.Lake(sys.argv[1]).write(big, "raw", "raw_ohlcv", {"instrument": "BTCUSDT", "month": "2026-01"})
print("completed", flush=True)  # never reached
