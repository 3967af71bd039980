"""Model cards and weight resolution: local folders, the Hugging Face Hub, official releases.

A model card (``models/<name>.toml``) says what a named model is and where its files come from:
a Hugging Face repo at a pinned revision, or an official release URL when no Hub copy exists.
Files are looked for, in order, in ``$SR1STEP_HOME/models/<name>/`` and in the Hugging Face cache;
``sr1step models download`` fetches Hub files, and for the others says where to put them.
"""

from __future__ import annotations

import os
import re
import socket
import urllib.parse
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import tomllib

from .config import from_dict, unknown_name_error
from .download import DownloadError, download, downloads_allowed, is_direct

REPO_SPEC = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?:@(?P<rev>[\w./-]+))?$")


class WeightsNotFoundError(FileNotFoundError):
    """Weights are missing; the message names the files and how to provide them."""


@dataclass(frozen=True)
class ModelCard:
    name: str
    method: str
    summary: str
    scale: int
    license: str
    commercial_use: bool
    source_url: str  # official release (file URL or page)
    files: tuple[str, ...]  # files the model needs, relative to the repo/release
    repo_id: str = ""  # Hugging Face repo; empty when no Hub copy exists
    revision: str = ""  # pinned commit of repo_id
    requires: tuple[str, ...] = ()  # other cards this model needs (e.g. its autoencoder)
    public_download: bool = True  # false: the authors published no link (the notes say how to get it)
    sha256: dict = field(default_factory=dict)  # file -> pinned sha256 of direct downloads, where known
    preset: str = ""  # generator preset of the method (network config, schedule)
    paper: str = ""
    notes: str = ""
    params: dict = field(default_factory=dict)  # extra, method-specific settings
    bundled: bool = False  # its weight folder ships with sr1step, next to the card (models/<name>/)
    published_as: str = ""  # row of benchmark/published.toml, where it is not the method's (baselines)

    @property
    def on_hub(self) -> bool:
        return bool(self.repo_id)


def sr1step_home() -> Path:
    return Path(os.environ.get("SR1STEP_HOME", Path.home() / ".cache" / "sr1step")).expanduser()


def models_dir() -> Path:
    return sr1step_home() / "models"


def card_dirs() -> list[Path]:
    """Where cards are read from: the installed package, the source checkout, the user's folder."""
    here = Path(__file__).resolve().parent
    dirs = [here / "model_cards", here.parents[1] / "models", sr1step_home() / "cards"]
    extra = os.environ.get("SR1STEP_CARDS")
    if extra:
        dirs.extend(Path(p) for p in extra.split(os.pathsep))
    return [d for d in dirs if d.is_dir()]


def load_card(path: Path) -> ModelCard:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return from_dict(ModelCard, data, path.name)


def load_cards() -> dict[str, ModelCard]:
    cards: dict[str, ModelCard] = {}
    seen_dirs = set()
    for d in card_dirs():
        if d.resolve() in seen_dirs:
            continue
        seen_dirs.add(d.resolve())
        for path in sorted(d.glob("*.toml")):
            card = load_card(path)
            cards.setdefault(card.name, card)  # package cards win over same-named user cards
    return cards


def get_card(name: str) -> ModelCard:
    cards = load_cards()
    if name not in cards:
        raise unknown_name_error("model", name, list(cards))
    return cards[name]


def local_dir(card: ModelCard) -> Path:
    return models_dir() / card.name


def bundled_dir(card: ModelCard) -> Path | None:
    """The weight folder of a bundled card (inside the package or the source checkout)."""
    for d in card_dirs():
        if (d / card.name / "config.json").is_file():
            return d / card.name
    return None


def converted_dir(card: ModelCard) -> Path:
    """The sr1step weight folder of a card: bundled with the package, or converted locally."""
    if card.bundled:
        folder = bundled_dir(card)
        if folder is None:
            raise WeightsNotFoundError(
                f"model {card.name!r} ships with sr1step, but its folder {card.name}/ (config.json and "
                "weights) is missing from the installed package: reinstall sr1step"
            )
        return folder
    return local_dir(card) / "converted"


def _hf_cached(card: ModelCard, filename: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(card.repo_id, filename, revision=card.revision or None)
    return Path(found) if isinstance(found, str) else None


def find_file(card: ModelCard, filename: str) -> Path | None:
    """A card's file if it is already on this machine (bundled, local folder or Hugging Face cache)."""
    if card.bundled:
        folder = bundled_dir(card)
        return folder / filename if folder is not None and (folder / filename).is_file() else None
    local = local_dir(card) / filename
    if local.is_file():
        return local
    if card.on_hub:
        return _hf_cached(card, filename)
    return None


def card_status(card: ModelCard) -> str:
    """``bundled``, ``converted``, ``present``, ``partial`` or ``missing``."""
    if card.bundled:
        return "bundled" if bundled_dir(card) is not None else "missing"
    if (converted_dir(card) / "config.json").is_file():
        return "converted"
    found = [find_file(card, f) is not None for f in card.files]
    if all(found):
        return "present"
    return "partial" if any(found) else "missing"


@lru_cache(maxsize=4)
def reachable(host: str, port: int = 443, timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def hub_online() -> bool:
    """False when HF_HUB_OFFLINE is set or the Hub cannot be reached (checked once, in seconds,
    instead of huggingface_hub's retries)."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    host = urllib.parse.urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    return reachable(host)


def missing_message(card: ModelCard, missing: list[str]) -> str:
    target = local_dir(card)
    lines = [f"model {card.name!r}: missing {', '.join(missing)}."]
    if card.on_hub:
        lines.append(
            f"It comes from the Hugging Face repo {card.repo_id} at revision {card.revision or 'main'}; "
            "the Hub cannot be reached from here (offline or HF_HUB_OFFLINE=1)."
        )
        lines.append(
            f"Run `sr1step models download {card.name}` where the Hub is reachable, or copy the "
            f"files to {target}/"
        )
    elif not card.public_download:
        lines.append(f"No public download exists ({card.source_url}): {card.notes}")
        lines.append(f"Put the file in {target}/ (keeping the file name), or distill your own.")
    else:
        lines.append(
            f"There is no Hugging Face copy; download it from the official release: {card.source_url}"
        )
        # autoencoders and base models are converted with the models that need them; the GAN
        # baselines (spandrel) load as they are
        convert = (
            ""
            if card.method in ("autoencoder", "base-model", "spandrel")
            else f", then run `sr1step models convert {card.name}`"
        )
        lines.append(f"and put it in {target}/ (keeping the file name){convert}.")
    lines.append(f"Licence: {card.license}.")
    return "\n".join(lines)


def _find_or_download(card: ModelCard) -> tuple[dict[str, Path], list[str]]:
    """(paths found, names missing) of a card's files, fetching Hub files at the pinned revision."""
    paths: dict[str, Path] = {}
    missing = []
    for filename in card.files:
        found = find_file(card, filename)
        if found is None and card.on_hub and hub_online():
            from huggingface_hub import hf_hub_download

            found = Path(hf_hub_download(card.repo_id, filename, revision=card.revision or None))
        elif (
            found is None and not card.on_hub and downloads_allowed() and is_direct(card.source_url, filename)
        ):
            try:
                found = download(card.source_url, local_dir(card) / filename, card.sha256.get(filename))
            except DownloadError as err:
                raise WeightsNotFoundError(f"{err}\n{missing_message(card, [filename])}") from None
        if found is None:
            missing.append(filename)
        else:
            paths[filename] = found
    return paths, missing


def download_card(card: ModelCard, *, with_requirements: bool = True) -> dict[str, Path]:
    """Paths of all of a card's files, downloading Hub files at the pinned revision if needed.
    Every missing file, the card's own and those of the cards it requires, is named at once."""
    paths, missing = _find_or_download(card)
    problems = [missing_message(card, missing)] if missing else []
    if with_requirements:
        for name in card.requires:
            required = get_card(name)
            _, req_missing = _find_or_download(required)
            if req_missing:
                problems.append(missing_message(required, req_missing))
    if problems:
        raise WeightsNotFoundError("\n".join(problems))
    return paths


def snapshot_folder(card: ModelCard) -> Path:
    """The folder holding a Hub card's files (for diffusers ``from_pretrained`` on a local dir)."""
    paths = download_card(card, with_requirements=False)
    first_name, first = next(iter(paths.items()))
    root = first
    for _ in Path(first_name).parts:
        root = root.parent
    return root


def resolve_repo(spec: str) -> Path:
    """``org/repo[@revision]`` -> local snapshot folder (cache first, then the Hub)."""
    match = REPO_SPEC.match(spec)
    if not match:
        raise WeightsNotFoundError(
            f"{spec!r} is not a file, a folder, a model name or a Hub repo id (org/name[@revision])"
        )
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    repo, rev = match["repo"], match["rev"]
    try:
        return Path(snapshot_download(repo, revision=rev, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, OSError):
        pass
    if not hub_online():
        from huggingface_hub import constants

        raise WeightsNotFoundError(
            f"Hub repo {repo} (revision {rev or 'main'}) is not in the local cache "
            f"({constants.HF_HUB_CACHE}) "
            "and the Hub cannot be reached. Download it where the Hub is reachable, "
            "or pass --weights a local folder holding its files."
        )
    return Path(snapshot_download(repo, revision=rev))


def resolve_weights(spec: str) -> Path | ModelCard:
    """``--weights`` value -> a local path, or a model card to load by name."""
    cards = load_cards()
    if spec in cards:
        return cards[spec]
    path = Path(spec).expanduser()
    if path.exists():
        return path
    return resolve_repo(spec)
