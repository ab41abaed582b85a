"""Exif -> acquisition labels: camera make/model, smartphone flag, and the paper's classes for
exposure, aperture, ISO and focal length (docs/protocol.md#flickrexif). Reads with Pillow only.

Raw values are kept as floats (seconds, f-number, ISO, mm); `bin_value` maps one to a class when
it lies within TOLERANCE (relative, per attribute) of the nearest class on a log scale, else None.

Class labels:
- exposure: "1/30" … "1/1000" (16, the standard third-stop shutter series);
- aperture: "f/1.8", "f/2", "f/2.8", … "f/11" (17; whole numbers without ".0");
- iso: "ISO 50" … "ISO 3200" (16). The paper names only the range 50 … 3200, not the 16 values.
  We take the standard third-stop ISO series 50 … 3200 (19 values) without the three that are
  rarest on Flickr-type photos (64, 2000, 2500). The exact 16 of the paper are unknown;
- focal_length: "4.0mm", "4.2mm", "4.3mm", "5.8mm", "6.0mm", "18mm", … "200mm" (13; one
  decimal below 10 mm, as the paper writes them).

Tolerances: exposure, aperture and ISO 2.5 % (neighbouring classes are >= 9 % apart, so a value
never fits two); focal length 1.5 % (4.2 and 4.3 mm are only 2.4 % apart: 4.25 mm, the iPhone
XR/XS lens, goes to the nearer one on a log scale, 4.3 mm; 5.9 mm fits neither 5.8 nor 6.0).
"""

from __future__ import annotations

import math
import numbers
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

MAKE_TAG, MODEL_TAG, EXIF_IFD = 0x010F, 0x0110, 0x8769
EXPOSURE_TAG, FNUMBER_TAG, ISO_TAG, FOCAL_TAG = 0x829A, 0x829D, 0x8827, 0x920A
TAG_NAMES = {"make": "Make", "model": "Model", "exposure": "ExposureTime", "aperture": "FNumber",
             "iso": "ISOSpeedRatings", "focal_length": "FocalLength"}

# Olympus cameras write three company names over the years; the paper's class name is this one.
OLYMPUS = "OLYMPUS OPTICAL CO.,LTD"

# (pattern on the cleaned, case-folded make, canonical name). The paper's FlickrExif make classes
# (Apple, Canon, EASTMAN KODAK COMPANY, FUJIFILM, NIKON, OLYMPUS OPTICAL CO.,LTD, Panasonic, SONY,
# samsung) are kept verbatim; other vendors get their usual short name. First match wins.
MAKE_ALIASES: tuple[tuple[str, str], ...] = (
    (r"apple\b", "Apple"),
    (r"canon\b", "Canon"),
    (r"(eastman )?kodak\b", "EASTMAN KODAK COMPANY"),
    (r"fuji(film\b| photo film\b)", "FUJIFILM"),
    (r"nikon\b", "NIKON"),
    (r"olympus\b", OLYMPUS),
    (r"(panasonic|matsushita)\b", "Panasonic"),
    (r"sony ?ericsson\b", "Sony Ericsson"),
    (r"sony\b", "SONY"),
    (r"samsung\b", "samsung"),
    (r"(hewlett[- ]?packard|hp)\b", "Hewlett-Packard"),
    (r"(pentax|asahi optical)\b", "PENTAX"),
    (r"ricoh\b", "RICOH"),
    (r"(seiko )?epson\b", "EPSON"),
    (r"gopro\b", "GoPro"),
    (r"(konica )?minolta\b", "KONICA MINOLTA"),
    (r"casio\b", "CASIO"),
    (r"leica\b", "Leica"),
    (r"sigma\b", "SIGMA"),
    (r"google\b", "Google"),
    (r"xiaomi\b", "Xiaomi"),
    (r"huawei\b", "HUAWEI"),
    (r"oneplus\b", "OnePlus"),
    (r"(motorola|moto)\b", "motorola"),
    (r"(lge|lg electronics)\b", "LG Electronics"),
    (r"htc\b", "HTC"),
    (r"nokia\b", "Nokia"),
    (r"(blackberry|rim|research in motion)\b", "BlackBerry"),
)

PHONE_MAKERS = frozenset(name.casefold() for name in (
    "Google", "Xiaomi", "Redmi", "POCO", "HUAWEI", "HONOR", "OnePlus", "OPPO", "vivo", "realme",
    "motorola", "LG Electronics", "HTC", "Nokia", "HMD Global", "BlackBerry", "ZTE", "Meizu",
    "Fairphone", "Nothing", "Essential", "Sony Ericsson", "SHARP", "asus", "Lenovo", "TCL",
    "Alcatel", "Infinix", "TECNO",
))
CAMERA_MAKERS = frozenset(name.casefold() for name in (
    "Canon", "NIKON", "FUJIFILM", OLYMPUS, "OM Digital Solutions", "Panasonic", "PENTAX", "RICOH",
    "EASTMAN KODAK COMPANY", "Hewlett-Packard", "EPSON", "GoPro", "Leica", "Hasselblad", "SIGMA",
    "CASIO", "KONICA MINOLTA", "DJI", "Phase One", "Mamiya", "Polaroid", "Vivitar", "SANYO",
    "SANYO Electric Co.,Ltd.", "Agfa", "AgfaPhoto", "Praktica", "Blackmagic Design", "Insta360",
))
# Makers of both phones and cameras: the model decides.
_SAMSUNG_PHONE = re.compile(r"^(SM-|GT-|SGH-|SCH-|SPH-|SHV-|SHW-|SC-\d|SCV\d|Galaxy|Nexus)", re.IGNORECASE)
_SONY_PHONE = re.compile(r"(xperia|^(SO-\d|SOV\d|SOG\d|XQ-|[C-J]\d{4}\b|A?\d{3}SO\b))", re.IGNORECASE)

EXPOSURE_CLASSES = (30, 40, 50, 60, 80, 100, 125, 160, 200, 250, 320, 400, 500, 640, 800, 1000)  # 1/N s
APERTURE_CLASSES = (1.8, 2, 2.2, 2.4, 2.8, 3.2, 3.5, 4, 4.5, 5, 5.6, 6.3, 7.1, 8, 9, 10, 11)
ISO_CLASSES = (50, 80, 100, 125, 160, 200, 250, 320, 400, 500, 640, 800, 1000, 1250, 1600, 3200)
FOCAL_CLASSES = (4.0, 4.2, 4.3, 5.8, 6.0, 18, 24, 28, 35, 50, 55, 70, 200)

# attribute -> ((class value, label), ...) in the order the paper lists them.
CLASSES: dict[str, tuple[tuple[float, str], ...]] = {
    "exposure": tuple((1 / n, f"1/{n}") for n in EXPOSURE_CLASSES),
    "aperture": tuple((float(f), f"f/{f:g}") for f in APERTURE_CLASSES),
    "iso": tuple((float(i), f"ISO {i}") for i in ISO_CLASSES),
    "focal_length": tuple((float(mm), f"{mm:.1f}mm" if mm < 10 else f"{mm:g}mm") for mm in FOCAL_CLASSES),
}
TOLERANCE: dict[str, float] = {"exposure": 0.025, "aperture": 0.025, "iso": 0.025, "focal_length": 0.015}
BINNED = tuple(CLASSES)


@dataclass(frozen=True)
class Acquisition:
    """What the Exif says about the camera and the shot; None wherever it says nothing usable."""

    make: str | None = None
    model: str | None = None
    raw_make: str | None = None
    raw_model: str | None = None
    is_smartphone: bool | None = None
    iso: float | None = None
    exposure: float | None = None  # seconds
    aperture: float | None = None  # f-number
    focal_length: float | None = None  # mm

    def bins(self) -> dict[str, str | None]:
        """The paper-style class label of exposure, aperture, iso and focal_length (None if none fits)."""
        return {attribute: bin_value(attribute, getattr(self, attribute)) for attribute in BINNED}


def read(path: str | Path) -> Acquisition:
    """Acquisition facts of one image file. Missing or corrupt Exif gives None fields, never an
    exception; a file Pillow cannot open as an image raises OSError (UnidentifiedImageError), and
    one past Pillow's pixel limit raises Image.DecompressionBombError."""
    with warnings.catch_warnings():
        # Corrupt Exif becomes None fields below; a warning per photo would only be noise.
        warnings.filterwarnings("ignore", message="Corrupt EXIF data", category=UserWarning)
        with Image.open(path) as image:
            return of_image(image)


def of_image(image: Image.Image) -> Acquisition:
    """Acquisition facts of an opened image (headers only: nothing is decoded); for readers that
    already hold the file open."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Corrupt EXIF data", category=UserWarning)
        ifd0, exif_ifd = _exif_dicts(image)

    def tag(number: int) -> object:
        # Exif-IFD tags live in the Exif sub-IFD; a few old writers put them in IFD0.
        return exif_ifd.get(number, ifd0.get(number))

    raw_make, raw_model = _text(ifd0.get(MAKE_TAG)), _text(ifd0.get(MODEL_TAG))
    make = normalise_make(raw_make)
    model = normalise_model(make, raw_model)
    return Acquisition(
        make=make,
        model=model,
        raw_make=raw_make,
        raw_model=raw_model,
        is_smartphone=is_smartphone(make, model),
        iso=_number(tag(ISO_TAG), rational=False),
        exposure=_number(tag(EXPOSURE_TAG)),
        aperture=_number(tag(FNUMBER_TAG)),
        focal_length=_number(tag(FOCAL_TAG)),
    )


def _exif_dicts(image: Image.Image) -> tuple[dict[int, object], dict[int, object]]:
    """IFD0 and the Exif sub-IFD as plain dicts; empty where Pillow cannot parse them."""
    try:
        exif = image.getexif()
        ifd0 = dict(exif.items())
    except Exception:  # Pillow raises many kinds on corrupt Exif; a bad block means "no Exif"
        return {}, {}
    try:
        sub = dict(exif.get_ifd(EXIF_IFD).items())
    except Exception:
        sub = {}
    return ifd0, sub


def _text(value: object) -> str | None:
    """Exif ASCII text: decoded, cut at the first NUL (the Exif terminator), outer space stripped."""
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            value = value.decode("latin-1")
    elif isinstance(value, str) and any("\x80" <= char <= "\xff" for char in value):
        try:  # Pillow decodes Exif text as Latin-1; many phones write UTF-8
            value = value.encode("latin-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass
    if not isinstance(value, str):
        return None
    value = value.split("\x00", 1)[0].strip()
    return value or None


def _number(value: object, rational: bool = True) -> float | None:
    """A positive finite float from an Exif value (rational, int, tuple, text), else None."""
    if isinstance(value, (tuple, list)):
        if rational and len(value) == 2 and all(isinstance(part, int) for part in value):
            value = _ratio(value[0], value[1])  # a legacy (numerator, denominator) pair
        elif value:
            value = value[0]  # several values written: the first is the one that applies
        else:
            return None
    if isinstance(value, bytes):
        value = _text(value)
    if isinstance(value, str):
        value = _parse_number(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    try:
        number = float(value)
    except (ArithmeticError, TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None  # x/0 is a bad field, not infinity


def _parse_number(text: str) -> float | None:
    """Decimal ("0.5") or fraction ("1/60") text as a float; anything else gives None."""
    parts = text.strip().split("/")
    try:
        if len(parts) == 2:
            return _ratio(float(parts[0]), float(parts[1]))
        return float(parts[0]) if len(parts) == 1 else None
    except ValueError:
        return None


def _clean(raw: str | None) -> str | None:
    """Printable text with single spaces; None when nothing recognisable (no ASCII letter/digit) is left."""
    if raw is None:
        return None
    text = "".join(char if char.isprintable() else " " for char in raw.split("\x00", 1)[0])
    text = " ".join(text.split())
    return text if any(char.isascii() and char.isalnum() for char in text) else None


def normalise_make(raw: str | None) -> str | None:
    """One canonical name per vendor (MAKE_ALIASES); unknown makes come back cleaned, not dropped."""
    text = _clean(raw)
    if text is None:
        return None
    folded = text.casefold()
    for pattern, canonical in MAKE_ALIASES:
        if re.match(pattern, folded):
            return canonical
    return text


def normalise_model(make: str | None, raw: str | None) -> str | None:
    """The model as the camera wrote it, cleaned (printable, single spaces). The make prefix is
    kept ("Canon EOS 5D Mark III", "NIKON D90", as the paper's classes); only a doubled leading
    make word is dropped ("Canon Canon EOS 400D" -> "Canon EOS 400D")."""
    text = _clean(raw)
    if text is None or make is None:
        return text
    words = text.split(" ")
    first = words[0].casefold()
    if len(words) >= 2 and words[1].casefold() == first and first in make.casefold().split():
        return " ".join(words[1:])
    return text


def is_smartphone(make: str | None, model: str | None) -> bool | None:
    """True for phones, False for cameras, None when the make is missing or unknown to us (raw or
    normalised make; for Apple, samsung and SONY the model decides, so a missing model gives None)."""
    canonical = normalise_make(make)
    if canonical is None:
        return None
    key = canonical.casefold()
    if key == "apple":
        return None if model is None else "iphone" in model.casefold()
    if key == "samsung":
        return None if model is None else bool(_SAMSUNG_PHONE.match(model))
    if key == "sony":
        return None if model is None else bool(_SONY_PHONE.search(model))
    if key in PHONE_MAKERS:
        return True
    if key in CAMERA_MAKERS:
        return False
    return None


def bin_value(attribute: str, value: float | None) -> str | None:
    """The class label of a raw exposure/aperture/iso/focal_length value, or None if none is within tolerance."""
    if attribute not in CLASSES:
        raise KeyError(f"no classes for attribute {attribute!r}; binned attributes: {', '.join(BINNED)}")
    if value is None or not math.isfinite(value) or value <= 0:
        return None
    distance, label = min((abs(math.log(value / centre)), label) for centre, label in CLASSES[attribute])
    return label if distance <= math.log1p(TOLERANCE[attribute]) + 1e-12 else None


def class_labels(attribute: str) -> tuple[str, ...]:
    """The class labels of a binned attribute, in the order the paper lists them."""
    return tuple(label for _, label in CLASSES[attribute])
