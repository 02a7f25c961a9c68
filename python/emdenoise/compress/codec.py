"""Frames to latents and back with an autoencoder's two ONNX graphs (no gRPC here).

Seed 002, sec. 2: each 160x160 tile, normalised on its own (sec. 2.2), becomes a 20x20xd
latent; decoding runs the decoder and inverts each tile's normalisation. The server's
Encode/Decode RPCs and the embedded client both call :class:`LatentCodec`, so the same
frame gives the same latents and the same restored frame either way.

Seams: tiles coded on their own meet at visible steps (the networks zero-pad every tile
border, and every tile has its own normalisation). Three measures, none of which costs
stored bytes: the encoder sees ``halo`` latent pixels' worth of the neighbouring image
around each tile (normalised with the tile's own map; only the tile's latents are kept);
the decoder sees each tile's latents framed by ``halo`` copies of their own border
(instead of zeros) and keeps the tile's own output; the level steps that remain, mostly
from the differing per-tile normalisations, are feathered out over a few pixels
(:func:`emdenoise.compress.seams.level_seams`). ``bench compress`` prints the seam ratio
(:func:`emdenoise.compress.seams.seam_ratio`, 1 = invisible) with and without them.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from emdenoise.compress.grid import TileGrid, join_tiles, plan_grid, split_tiles, tile_maps
from emdenoise.compress.model import AutoencoderSpec, autoencoder_spec
from emdenoise.compress.seams import level_seams
from emdenoise.engine.backends import is_out_of_memory
from emdenoise.engine.cards import GraphSpec, ModelCard
from emdenoise.engine.validation import as_frame
from emdenoise.errors import InvalidInput, ResourceExhausted

#: Latent pixels of context around each tile: neighbouring image for the encoder, edge
#: padding for the decoder (0: the networks' own zero padding, tiles as seed 002's crops).
DEFAULT_HALO = 2
#: Pixels each side of a tile border over which remaining steps are feathered out (0: off).
DEFAULT_SEAM_WIDTH = 4


@dataclass
class EncodedFrame:
    """One frame's latents: ``latents`` (tiles, depth, side, side) float32 and each tile's
    normalisation (``shift``, ``scale``), for a frame of ``shape`` cut into ``grid``."""

    shape: tuple[int, int]
    tile: int
    shift: np.ndarray
    scale: np.ndarray
    latents: np.ndarray

    @property
    def grid(self) -> TileGrid:
        return plan_grid(self.shape, self.tile)

    def check(self, spec: AutoencoderSpec, *, index: int | None = None) -> None:
        """Refuse latents whose layout does not fit ``spec``'s decoder."""
        where = f"frame {index}" if index is not None else "the frame"
        side = spec.latent_side
        expected = (self.grid.count, spec.depth, side, side)
        if self.tile != spec.tile or tuple(self.latents.shape) != expected:
            raise InvalidInput(
                f"{where}: latents of shape {tuple(self.latents.shape)} in {self.tile} px tiles do not fit "
                f"{spec.model_id} (depth {spec.depth}, {spec.tile} px tiles, expected {expected}); "
                "decode them with the model that encoded them."
            )
        if self.shift.shape != (self.grid.count,) or self.scale.shape != (self.grid.count,):
            raise InvalidInput(f"{where}: there must be one normalisation (shift, scale) per tile; the latents are damaged.")
        if not (np.isfinite(self.latents).all() and np.isfinite(self.shift).all() and np.isfinite(self.scale).all()):
            raise InvalidInput(f"{where}: the latents contain NaN or infinite values; the data are damaged.")


class _Graph:
    """An ONNX Runtime session for one named graph of a card."""

    def __init__(self, card: ModelCard, graph: GraphSpec, providers: list[str]):
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(card.folder / graph.file), options, providers=providers)
        self.input, self.output = graph.input, graph.output

    def run(self, batch: np.ndarray) -> np.ndarray:
        try:
            (result,) = self.session.run([self.output], {self.input: np.ascontiguousarray(batch, np.float32)})
        except Exception as error:
            if is_out_of_memory(error):
                raise ResourceExhausted(
                    f"the autoencoder ran out of memory ({error}); lower --batch-size or free memory."
                ) from error
            raise
        return np.asarray(result, dtype=np.float32)


class LatentCodec:
    """Encode frames to latents and decode them, with the sessions of one engine.

    Parameters
    ----------
    engine : emdenoise.engine.Engine
        Supplies the model repository, the ONNX Runtime providers and the batch size.

    Examples
    --------
    >>> from emdenoise.engine import Engine
    >>> codec = codec_for(Engine(device="cpu"))                       # doctest: +SKIP
    >>> encoded = codec.encode_frame(frame, codec.spec("ede-ae-d16"))  # doctest: +SKIP
    >>> restored = codec.decode_frame(encoded, codec.spec("ede-ae-d16"))  # doctest: +SKIP
    """

    def __init__(self, engine):
        self.engine = engine
        self._graphs: dict[tuple[str, str], _Graph] = {}
        self._lock = threading.Lock()

    def spec(self, model_id: str) -> AutoencoderSpec:
        """The autoencoder ``model_id`` (``ModelNotFound`` / ``InvalidInput`` otherwise)."""
        if not model_id:
            raise InvalidInput("name the autoencoder to use (--model, e.g. ede-ae-d16; see 'emdenoise models').")
        return autoencoder_spec(self.engine.card(model_id))

    def _graph(self, spec: AutoencoderSpec, which: str) -> _Graph:
        key = (spec.card.id, getattr(spec, which).sha256)
        with self._lock:
            graph = self._graphs.get(key)
            if graph is None:
                graph = _Graph(spec.card, getattr(spec, which), self.engine.providers)
                self._graphs[key] = graph
            return graph

    def _run_batched(self, graph: _Graph, inputs: np.ndarray) -> np.ndarray:
        size = max(int(self.engine.batch_size), 1)
        return np.concatenate([graph.run(inputs[i : i + size]) for i in range(0, len(inputs), size)])

    def encode_frame(
        self, frame: np.ndarray, spec: AutoencoderSpec, *, index: int | None = None, halo: int = DEFAULT_HALO
    ) -> EncodedFrame:
        """Latents of one 2-D frame (seed 002, sec. 2): tile, normalise each tile, encode.

        Parameters
        ----------
        frame : ndarray
            Any accepted pixel type and any size of at least 2x2.
        spec : AutoencoderSpec
            From :meth:`spec`.
        index : int, optional
            Frame number, for messages.
        halo : int
            Latent pixels (``halo`` x downsampling image pixels) of the neighbouring tiles
            the encoder sees around each tile, normalised with the tile's own map; only the
            tile's own latents are kept, so the halo costs time, not bytes.

        Returns
        -------
        EncodedFrame
        """
        frame = as_frame(frame, index=index)
        grid = plan_grid(frame.shape, spec.tile)
        margin = halo * spec.downsampling
        windows = split_tiles(frame, grid, margin=margin)
        core = windows[:, margin : margin + spec.tile, margin : margin + spec.tile]
        shift, scale = tile_maps(core, spec.normalization)
        normalised = (windows - shift[:, None, None]) / scale[:, None, None]
        latents = self._run_batched(self._graph(spec, "encoder"), normalised[:, None])
        latents = latents[:, :, halo : latents.shape[2] - halo, halo : latents.shape[3] - halo]
        side = spec.latent_side
        if latents.shape[1:] != (spec.depth, side, side):
            raise InvalidInput(
                f"model {spec.model_id} made latents of shape {latents.shape[1:]}, but its card promises "
                f"({spec.depth}, {side}, {side}); re-export the model."
            )
        return EncodedFrame(grid.shape, spec.tile, shift, scale, np.ascontiguousarray(latents))

    def decode_frame(
        self,
        encoded: EncodedFrame,
        spec: AutoencoderSpec,
        *,
        index: int | None = None,
        halo: int = DEFAULT_HALO,
        seam_width: int = DEFAULT_SEAM_WIDTH,
    ) -> np.ndarray:
        """Restored frame (float32, the original shape) from its latents.

        Parameters
        ----------
        encoded : EncodedFrame
        spec : AutoencoderSpec
            The model that made the latents (checked by the caller against its digest).
        index : int, optional
            Frame number, for messages.
        halo : int
            Latent pixels of edge padding (copies of the tile's own border latents) each
            tile is decoded with, against seams at tile borders (0: the network's zero
            padding, as for seed 002's crops).
        seam_width : int
            Pixels on each side of a tile border over which the remaining level steps are
            feathered out (:func:`emdenoise.compress.seams.level_seams`; 0: off).

        Returns
        -------
        ndarray
            float32 of shape ``encoded.shape``: the decoder's output with each tile's
            normalisation inverted (seed 002, sec. 2.2).
        """
        encoded.check(spec, index=index)
        grid = encoded.grid
        windows = latent_windows(encoded.latents, grid, halo)
        decoded = self._run_batched(self._graph(spec, "decoder"), windows)[:, 0]
        cut = halo * spec.downsampling
        tiles = decoded[:, cut : cut + spec.tile, cut : cut + spec.tile]
        if tiles.shape[1:] != (spec.tile, spec.tile):
            raise InvalidInput(f"model {spec.model_id}'s decoder made tiles of {decoded.shape[1:]}; re-export the model.")
        tiles = tiles * encoded.scale[:, None, None] + encoded.shift[:, None, None]
        mosaic = join_tiles(tiles.astype(np.float32, copy=False), grid, crop=False)
        if seam_width > 0:
            mosaic = level_seams(mosaic, spec.tile, width=seam_width)
        return np.ascontiguousarray(mosaic[: grid.shape[0], : grid.shape[1]])


def latent_windows(latents: np.ndarray, grid: TileGrid, halo: int) -> np.ndarray:
    """Each tile's latents framed by ``halo`` copies of its own outermost latents.

    The decoder would otherwise pad every tile with zeros, which it renders as a dark or
    bright rim. Copies of the tile's own border latents keep the tile self-consistent
    (its neighbours' latents are in their own per-tile normalisation, and were measured
    to leave stronger seams and a lower PSNR on held-out simulated TEM images).
    """
    if halo <= 0:
        return latents
    return np.pad(latents, ((0, 0), (0, 0), (halo, halo), (halo, halo)), mode="edge")


_CODECS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_CODECS_LOCK = threading.Lock()


def codec_for(engine) -> LatentCodec:
    """The :class:`LatentCodec` of ``engine`` (one per engine: sessions load once)."""
    with _CODECS_LOCK:
        codec = _CODECS.get(engine)
        if codec is None:
            codec = _CODECS[engine] = LatentCodec(engine)
        return codec
