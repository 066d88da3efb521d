"""The daily JSONL conversation log: one complete line per turn, images saved once by hash."""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from webui.images import ChatImage

# All sessions of the process append to the same daily file.
_append_lock = threading.Lock()


class ConversationLog:
    """Appends turns to `<dir>/conv-YYYY-MM-DD.jsonl` and images to `<dir>/images/`."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.image_dir = self.directory / "images"

    def path_for(self, day: dt.date) -> Path:
        return self.directory / f"conv-{day.isoformat()}.jsonl"

    def save_image(self, image: ChatImage) -> Path:
        """Store the image under its content hash unless it is already there."""
        self.image_dir.mkdir(parents=True, exist_ok=True)
        target = self.image_dir / image.file_name
        if target.exists():
            return target
        # Write aside, then rename: a crash never leaves a truncated file under the final name.
        fd, tmp_name = tempfile.mkstemp(dir=self.image_dir, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as tmp:
                tmp.write(image.data)
                tmp.flush()
                os.fsync(tmp.fileno())
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return target

    def append_turn(self, record: dict[str, Any], now: dt.datetime | None = None) -> Path:
        """Append one turn as one line; flushed and fsynced before returning."""
        now = now or dt.datetime.now()
        line = json.dumps({"time": now.isoformat(timespec="seconds"), **record},
                          ensure_ascii=False, separators=(",", ":")) + "\n"
        data = line.encode("utf-8")
        path = self.path_for(now.date())
        self.directory.mkdir(parents=True, exist_ok=True)
        with _append_lock:
            # O_APPEND and a single write per line: lines of concurrent writers never interleave.
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                # A line torn by a crash (power loss mid-write) ends without a newline; start on a
                # fresh line so that only the torn line is lost, never the next one.
                if os.fstat(fd).st_size and _last_byte(path) != b"\n":
                    data = b"\n" + data
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
        return path


def _last_byte(path: Path) -> bytes:
    with path.open("rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1)


def read_turns(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """Parse a log, skipping a line torn by a crash."""
    for line in lines:
        line = line.strip()
        if not line:
            continue
        try:
            yield json.loads(line)
        except ValueError:
            continue


def message_record(role: str, content: str, images: Iterable[ChatImage] = ()) -> dict[str, Any]:
    """One message as the log stores it: images by file name only."""
    record: dict[str, Any] = {"role": role, "content": content}
    names = [image.file_name for image in images]
    if names:
        record["images"] = names
    return record
