"""An index of a webdataset tar shard: which ``<key>.<ext>`` members it holds and where each one's bytes are,
so an indexed dataset can read one sample by seeking instead of streaming the whole shard."""

from __future__ import annotations


def scan_tar(url: str) -> tuple[bool, dict[str, dict[str, tuple[str, int, int]]]]:
    """(is an uncompressed tar, {key: {ext: (member name, data offset, size)}}) in member order."""
    import tarfile

    groups: dict[str, dict[str, tuple[str, int, int]]] = {}
    try:
        plain = not _compressed(url)
        with tarfile.open(url) as tar:
            for m in tar:
                if not m.isfile():
                    continue
                head, _, base = m.name.rpartition("/")
                key, dot, ext = base.partition(".")
                if not (key and dot and ext):
                    continue  # not a "<key>.<ext>" member: webdataset skips these too
                groups.setdefault(f"{head}/{key}" if head else key, {})[ext.lower()] = (
                    m.name,
                    m.offset_data,
                    m.size,
                )
    except (tarfile.TarError, OSError, EOFError) as err:
        raise ValueError(
            f"cannot index shard {url} (expected a tar file): {type(err).__name__}: {err}"
        ) from err
    return plain, groups


def _compressed(url: str) -> bool:
    with open(url, "rb") as f:
        magic = f.read(6)
    return magic[:2] == b"\x1f\x8b" or magic[:3] == b"BZh" or magic == b"\xfd7zXZ\x00"
