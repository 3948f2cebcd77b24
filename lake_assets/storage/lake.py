"""The parquet lake: hive-partitioned files written atomically, one file per partition.

Layout: `<root>/<group>/<asset>/<dim>=<key>/.../part-0.parquet`. A write goes to a temp file in the same folder and is
moved over the old one with `os.replace`, so a crash leaves the old version or the new one, never a mix, and a
re-materialization replaces the partition exactly.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, cast

import polars as pl

from lake_assets.processes import alive
from lake_assets.settings import is_url, lake_root
from lake_assets.vocabulary import INSTRUMENT, validate_instrument_id

if TYPE_CHECKING:
    from lake_assets.storage.reader import LakeReader

PART_FILE = "part-0.parquet"
# LZ4 (Parquet's LZ4_RAW): a features partition writes in ~24 ms and reads in ~13 ms instead of zstd's ~53 / ~24 ms,
# for files ~8% larger; DuckDB, pyarrow and polars all read it.
COMPRESSION: Final = "lz4"
S3_PART_BYTES = 64 * 2**20  # object storage: a partition larger than this goes up as a multipart upload
_SAFE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_SAFE_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class LakePathError(ValueError):
    """A group, asset, dimension or key that is unsafe to use as a path component."""


def _check_name(kind: str, value: str) -> str:
    if not _SAFE_NAME.fullmatch(value):
        raise LakePathError(f"invalid {kind} name {value!r}: must match {_SAFE_NAME.pattern}")
    return value


def _check_key(dim: str, value: str) -> str:
    if dim == INSTRUMENT:
        return validate_instrument_id(value)
    if not _SAFE_KEY.fullmatch(value) or ".." in value:
        raise LakePathError(f"invalid partition key {dim}={value!r}: must match {_SAFE_KEY.pattern}")
    return value


def _writer_alive(tmp: Path) -> bool:
    """Whether the process named in a temp file's name (`.<file>.<pid>.<uuid>.tmp`) still runs."""
    parts = tmp.name.split(".")
    try:
        pid = int(parts[-3])
    except (IndexError, ValueError):
        return False
    return alive(pid)


DELIVERIES = "_deliveries"  # <root>/_deliveries/<group>/<asset>/<dims>/<ingested_at>-<open|closed>.parquet
_DELIVERY_NAME = re.compile(r"^(\d{8}T\d{12})Z-(open|closed)\.parquet$")
_DELIVERY_TS = "%Y%m%dT%H%M%S%f"


@dataclass(frozen=True)
class Delivery:
    """One vendor delivery of a partition, kept as delivered: when it was ingested and whether the period it covers
    had closed by then (a closed delivery is complete; an open one was cut at its ingestion time)."""

    ingested_at: datetime
    closed: bool
    path: Path


class Lake:
    """A parquet lake rooted at `root` (default: `$QLAKE_DATA_ROOT/lake`)."""

    def __init__(self, root: Path | str | None = None) -> None:
        if root is None:
            self.root = lake_root()
        elif is_url(root):
            from upath import UPath

            self.root = cast(Path, UPath(str(root).rstrip("/")))
        else:
            self.root = Path(root)
        # object storage (s3://...): paths are `upath.UPath`s, files go through fsspec, each partition is one PUT
        self.remote = not isinstance(self.root, Path)
        self._fs: Any = getattr(self.root, "fs", None) if self.remote else None
        self._swept: set[Path] = set()  # tables whose dead writers' temp files this process has removed
        self._reader: LakeReader | None = None

    # --- files: local, or objects through fsspec --------------------------------------------------------------------

    def _put(self, df: pl.DataFrame, final: Path) -> None:
        """Object storage: the partition is serialized in memory and sent as one object (a single PUT, or a multipart
        upload completed in one call): readers see the old object until the new one is complete, never a part."""
        buf = io.BytesIO()
        df.write_parquet(buf, compression=COMPRESSION, statistics=True)
        self._fs.pipe_file(str(final), buf.getvalue(), chunksize=S3_PART_BYTES)

    def read_frame(self, path: Path, columns: Sequence[str] | None = None) -> pl.DataFrame:
        """One parquet file (only `columns` that it has, in the order given, when given)."""
        source: Any = path
        if self.remote:
            source = io.BytesIO(self._fs.cat_file(str(path)))
        if columns is None:
            return pl.read_parquet(source)
        have = pl.read_parquet_schema(source)
        if self.remote:
            source.seek(0)
        return pl.read_parquet(source, columns=[c for c in dict.fromkeys(columns) if c in have])

    def scan(self, path: Path) -> pl.LazyFrame:
        """A lazy scan of one file (object storage: read whole, then lazy)."""
        return self.read_frame(path).lazy() if self.remote else pl.scan_parquet(path)

    def schema(self, path: Path) -> dict[str, pl.DataType]:
        if self.remote:
            return pl.read_parquet_schema(io.BytesIO(self._fs.cat_file(str(path))))
        return pl.read_parquet_schema(path)

    def stamp(self, path: Path) -> tuple[object, int] | None:
        """What changes when the file is replaced: (mtime, size) locally, (ETag, size) of an object; None if absent."""
        try:
            if self.remote:
                info = self._fs.info(str(path))
                return (info.get("ETag") or info.get("LastModified"), int(info["size"]))
            st = path.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def _unlink(self, path: Path) -> None:
        if self.remote:
            with contextlib.suppress(FileNotFoundError):
                self._fs.rm_file(str(path))
        else:
            path.unlink(missing_ok=True)

    @property
    def reader(self) -> LakeReader:
        """This lake's reader (`storage.reader`): partitions read through it are held while they are unchanged."""
        if self._reader is None:
            from lake_assets.storage.reader import LakeReader

            self._reader = LakeReader(self)
        return self._reader

    def asset_dir(self, group: str, asset: str) -> Path:
        return self.root / _check_name("group", group) / _check_name("asset", asset)

    def partition_path(self, group: str, asset: str, dims: Mapping[str, str] | None = None) -> Path:
        path = self.asset_dir(group, asset)
        for dim, key in (dims or {}).items():
            path = path / f"{_check_name('dimension', dim)}={_check_key(dim, key)}"
        return path / PART_FILE

    def glob(self, group: str, asset: str, depth: int) -> str:
        """The glob DuckDB reads an asset through (`depth` = number of partition dimensions)."""
        return str(self.asset_dir(group, asset) / "/".join(["*"] * depth) / PART_FILE)

    def write(self, df: pl.DataFrame, group: str, asset: str, dims: Mapping[str, str] | None = None) -> Path:
        """Atomically replace one partition with `df`; a frame without columns (nothing to say) clears it."""
        final = self.partition_path(group, asset, dims)
        if not df.columns:
            self._unlink(final)
            return final
        if self.remote:
            self._put(df, final)
            return final
        self._sweep_table(self.asset_dir(group, asset))
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
        try:
            df.write_parquet(tmp, compression=COMPRESSION, statistics=True)
            with tmp.open("rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        return final

    def staging_path(self, group: str, asset: str, dims: Mapping[str, str] | None = None) -> Path:
        """A temp file beside the partition, for data written in pieces before it is published (`publish_file`);
        a dead writer's leftover is swept like any temp file. Local lakes only (trade dumps streamed to disk)."""
        if self.remote:
            raise LakePathError("staged partitions (streamed trade dumps) need a local lake, not object storage")
        final = self.partition_path(group, asset, dims)
        self._sweep_table(self.asset_dir(group, asset))
        final.parent.mkdir(parents=True, exist_ok=True)
        return final.with_name(f".{final.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")

    def publish_file(self, staged: Path, group: str, asset: str, dims: Mapping[str, str] | None = None) -> Path:
        """Atomically make a staged file (from `staging_path`) the partition."""
        final = self.partition_path(group, asset, dims)
        with staged.open("rb") as fh:
            os.fsync(fh.fileno())
        os.replace(staged, final)
        return final

    def exists(self, group: str, asset: str, dims: Mapping[str, str] | None = None) -> bool:
        return self.partition_path(group, asset, dims).is_file()

    def read(
        self,
        group: str,
        asset: str,
        dims_list: Iterable[Mapping[str, str]],
        schema: pl.Schema | None = None,
        columns: Sequence[str] | None = None,
    ) -> pl.DataFrame:
        """Read and concatenate the given partitions (missing ones are skipped).

        `columns` reads only those (the ones a partition's file has, in the order given) instead of every column.
        """
        paths = [p for p in (self.partition_path(group, asset, d) for d in dims_list) if p.is_file()]
        if not paths:
            return pl.DataFrame(schema=schema) if schema is not None else pl.DataFrame()
        frames = [self.read_frame(p, columns) for p in paths]
        return pl.concat(frames, how="vertical_relaxed") if len(frames) > 1 else frames[0]

    def read_all(self, group: str, asset: str) -> pl.DataFrame:
        files = self._part_files(self.asset_dir(group, asset))
        if not files:
            return pl.DataFrame()
        return pl.concat([self.read_frame(f) for f in files], how="vertical_relaxed")

    def _part_files(self, base: Path) -> list[Path]:
        if self.remote:
            prefix = self._fs._strip_protocol(str(base)).rstrip("/") + "/"
            keys = [k for k in self._fs.glob(f"{prefix}**/{PART_FILE}") if k.startswith(prefix)]
            return sorted((base / k[len(prefix) :] for k in keys), key=str)
        return sorted(base.rglob(PART_FILE))

    def partitions(self, group: str, asset: str) -> list[dict[str, str]]:
        """The dims of every written partition of an asset."""
        out = []
        base = self.asset_dir(group, asset)
        for f in self._part_files(base):
            parts = str(f)[len(str(base)) + 1 :].split("/")[:-1]
            out.append(dict(p.split("=", 1) for p in parts))
        return out

    # --- deliveries: every vendor delivery of a raw partition, kept beside the published partition ---------------

    def delivery_dir(self, group: str, asset: str, dims: Mapping[str, str] | None = None) -> Path:
        """Where a partition's deliveries are kept: outside the table's directory, so views, globs and partition
        listings see only the published `part-0.parquet`."""
        rel = str(self.partition_path(group, asset, dims).parent)[len(str(self.root)) + 1 :]
        return self.root / DELIVERIES / rel

    def write_delivery(
        self,
        df: pl.DataFrame,
        group: str,
        asset: str,
        dims: Mapping[str, str] | None,
        ingested_at: datetime,
        closed: bool,
    ) -> Delivery:
        """Keep `df` as one delivery (atomically, never overwritten: a second delivery at the same instant waits a
        microsecond)."""
        folder = self.delivery_dir(group, asset, dims)
        if not self.remote:
            folder.mkdir(parents=True, exist_ok=True)
        at = ingested_at.astimezone(UTC)
        while True:
            final = folder / f"{at.strftime(_DELIVERY_TS)}Z-{'closed' if closed else 'open'}.parquet"
            if not any(d.ingested_at == at for d in self.deliveries(group, asset, dims)):
                break
            at += timedelta(microseconds=1)
        if self.remote:
            self._put(df, final)
            return Delivery(at, closed, final)
        tmp = final.with_name(f".{final.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
        try:
            df.write_parquet(tmp, compression=COMPRESSION, statistics=True)
            with tmp.open("rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        return Delivery(at, closed, final)

    def deliveries(self, group: str, asset: str, dims: Mapping[str, str] | None = None) -> list[Delivery]:
        """A partition's deliveries, oldest first."""
        folder = self.delivery_dir(group, asset, dims)
        out = []
        if self.remote:
            names = [f.rsplit("/", 1)[-1] for f in self._fs.glob(f"{folder}/*.parquet")]
            files = [folder / n for n in names]
        else:
            files = list(folder.iterdir()) if folder.is_dir() else []
        for f in files:
            m = _DELIVERY_NAME.fullmatch(f.name)
            if m:
                at = datetime.strptime(m.group(1), _DELIVERY_TS).replace(tzinfo=UTC)
                out.append(Delivery(at, m.group(2) == "closed", f))
        return sorted(out, key=lambda d: d.ingested_at)

    def delivery_as_of(
        self, group: str, asset: str, dims: Mapping[str, str] | None, as_of: datetime
    ) -> Delivery | None:
        """The delivery in force at `as_of`: the latest ingested at or before it (None: nothing delivered yet)."""
        known = [d for d in self.deliveries(group, asset, dims) if d.ingested_at <= as_of]
        return known[-1] if known else None

    def _sweep_table(self, table_dir: Path) -> None:
        """Before a process first writes to a table, remove the temp files writers that died left there."""
        if table_dir in self._swept or self.remote:  # objects are whole PUTs: no temp files
            return
        self._swept.add(table_dir)
        if table_dir.exists():
            for f in table_dir.rglob(".*.tmp"):
                if not _writer_alive(f):
                    f.unlink(missing_ok=True)

    def clean_temp_files(self) -> int:
        """Remove temp files a crashed writer left behind; readers never see them (they are not part-0.parquet)."""
        n = 0
        if self.remote:  # an interrupted upload leaves no object (only an incomplete multipart upload, which the
            return 0  # bucket's lifecycle rule AbortIncompleteMultipartUpload removes)
        for f in self.root.rglob(".*.tmp") if self.root.exists() else []:
            f.unlink(missing_ok=True)
            n += 1
        return n
