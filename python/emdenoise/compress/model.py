"""What an autoencoder card promises the compressor: graphs, latent depth, tile size.

Everything is read from ``card.json`` (``task: encode``, ``graphs.encode`` and
``graphs.decode``, ``latent.depth``, ``latent.downsampling``, ``tile.size``,
``normalization.kind``), so a retrained model with the same layout needs no code change.
"""

from __future__ import annotations

from dataclasses import dataclass

from emdenoise.engine.cards import GraphSpec, ModelCard
from emdenoise.errors import InvalidInput

ENCODE, DECODE = "encode", "decode"


@dataclass(frozen=True)
class AutoencoderSpec:
    """The compression facts of one autoencoder card (seed 002, sec. 2: 160x160 -> 20x20xd)."""

    card: ModelCard
    depth: int
    tile: int
    downsampling: int
    normalization: str
    encoder: GraphSpec
    decoder: GraphSpec

    @property
    def model_id(self) -> str:
        return self.card.id

    @property
    def latent_side(self) -> int:
        """Latent pixels along each side of one tile (20 for the paper's 160 px crops)."""
        return self.tile // self.downsampling

    def info(self, device: str = "") -> dict:
        """Provenance and layout of the latents this model makes (also what a file records)."""
        from emdenoise._version import __version__

        return {
            "model_id": self.card.id,
            "model_version": self.card.version,
            "graph_sha256": self.encoder.sha256,
            "encoder_sha256": self.encoder.sha256,
            "decoder_sha256": self.decoder.sha256,
            "depth": self.depth,
            "tile_size": self.tile,
            "latent_side": self.latent_side,
            "normalization": self.normalization,
            "emdenoise_version": __version__,
            "device": device,
        }


def autoencoder_spec(card: ModelCard) -> AutoencoderSpec:
    """Read the compression facts of ``card``; refuse models that are not autoencoders.

    Raises
    ------
    InvalidInput
        The card is not an ``encode`` model with an encoder and a decoder graph.
    """
    if card.task not in (ENCODE, DECODE) or ENCODE not in card.graphs or DECODE not in card.graphs:
        raise InvalidInput(
            f"model {card.id} is a {card.task} model, not an autoencoder; choose one with task 'encode' "
            "(run 'emdenoise models', e.g. ede-ae-d16)."
        )
    latent = card.raw.get("latent") or {}
    tile = int(card.tile.get("size") or 0)
    down = int(latent.get("downsampling") or card.tile.get("multiple_of") or 0)
    depth = int(latent.get("depth") or 0)
    if tile <= 0 or down <= 0 or depth <= 0 or tile % down:
        raise InvalidInput(
            f"model {card.id}'s card lacks a usable tile size, latent depth or downsampling; re-export the model."
        )
    return AutoencoderSpec(
        card=card,
        depth=depth,
        tile=tile,
        downsampling=down,
        normalization=str(card.normalization.get("kind", "none")),
        encoder=card.graphs[ENCODE],
        decoder=card.graphs[DECODE],
    )


def check_latent_source(spec: AutoencoderSpec, encoder_sha256: str) -> None:
    """Refuse latents that ``spec``'s decoder cannot read: they came from another encoder.

    Latents are only meaningful to the decoder trained with the encoder that made them
    (seed 002, sec. 2), so the encoder's graph sha256 travels with them and must match.
    """
    if not encoder_sha256:
        raise InvalidInput(
            "the latents do not say which encoder made them (encoder sha256 missing); "
            "decode only latents written by 'emdenoise compress' or the Encode RPC."
        )
    if encoder_sha256 != spec.encoder.sha256:
        raise InvalidInput(
            f"these latents were made by an encoder with sha256 {encoder_sha256[:12]}..., not by "
            f"{spec.model_id} (encoder {spec.encoder.sha256[:12]}...); decode them with the model and "
            "model version that encoded them."
        )
