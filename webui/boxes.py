"""Parse `<ref>label</ref><box>[[x1, y1, x2, y2], ...]</box>` answers and draw the boxes."""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

# InternVL grounding output: coordinates are relative to a 1000 x 1000 grid.
GRID = 1000
_REF_BOX = re.compile(r"<ref>(?P<label>.*?)</ref>\s*<box>(?P<boxes>.*?)</box>", re.DOTALL)
_PALETTE = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324")


@dataclass(frozen=True)
class LabelledBox:
    """One box in 0..1000 grid coordinates with the label it belongs to."""

    label: str
    x1: float
    y1: float
    x2: float
    y2: float


def parse_boxes(text: str) -> list[LabelledBox]:
    """Every well-formed box of every <ref>/<box> pair; malformed ones are skipped."""
    found: list[LabelledBox] = []
    for match in _REF_BOX.finditer(text):
        label = match.group("label").strip()
        try:
            coords = json.loads(match.group("boxes"))
        except ValueError:
            continue
        if coords and isinstance(coords, list) and not isinstance(coords[0], list):
            coords = [coords]  # a single [x1, y1, x2, y2] without the outer list
        for box in coords if isinstance(coords, list) else []:
            if (
                isinstance(box, list) and len(box) == 4
                and all(isinstance(v, (int, float)) for v in box)
            ):
                x1, y1, x2, y2 = (min(max(float(v), 0.0), GRID) for v in box)
                found.append(LabelledBox(label, min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)))
    return found


def strip_grounding(text: str) -> str:
    """The answer with the markup removed, labels kept, for display."""
    return _REF_BOX.sub(lambda m: m.group("label"), text)


def draw_boxes(image_bytes: bytes, boxes: list[LabelledBox]) -> bytes:
    """A PNG of the image with the labelled boxes drawn, scaled from the 1000 grid."""
    with Image.open(io.BytesIO(image_bytes)) as src:
        image = src.convert("RGB")
    width, height = image.size
    draw = ImageDraw.Draw(image)
    line_px = max(2, round(min(width, height) / 200))
    font = ImageFont.load_default(size=max(12, round(min(width, height) / 30)))
    colors: dict[str, str] = {}
    for box in boxes:
        color = colors.setdefault(box.label, _PALETTE[len(colors) % len(_PALETTE)])
        rect = (
            box.x1 / GRID * width, box.y1 / GRID * height,
            box.x2 / GRID * width, box.y2 / GRID * height,
        )
        draw.rectangle(rect, outline=color, width=line_px)
        if box.label:
            left, top, right, bottom = draw.textbbox((0, 0), box.label, font=font)
            text_w, text_h = right - left, bottom - top
            # Label above the box when it fits, inside its top edge otherwise.
            y = rect[1] - text_h - 2 * line_px if rect[1] >= text_h + 2 * line_px else rect[1]
            draw.rectangle((rect[0], y, rect[0] + text_w + 2 * line_px, y + text_h + 2 * line_px),
                           fill=color)
            draw.text((rect[0] + line_px - left, y + line_px - top), box.label, fill="white",
                      font=font)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
