from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ArrayHeader(_message.Message):
    __slots__ = ("dtype", "shape")
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    dtype: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, dtype: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ...) -> None: ...

class FrameChunk(_message.Message):
    __slots__ = ("frame_index", "chunk_index", "chunk_count", "header", "data")
    FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    CHUNK_INDEX_FIELD_NUMBER: _ClassVar[int]
    CHUNK_COUNT_FIELD_NUMBER: _ClassVar[int]
    HEADER_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    frame_index: int
    chunk_index: int
    chunk_count: int
    header: ArrayHeader
    data: bytes
    def __init__(self, frame_index: _Optional[int] = ..., chunk_index: _Optional[int] = ..., chunk_count: _Optional[int] = ..., header: _Optional[_Union[ArrayHeader, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class SharedMemory(_message.Message):
    __slots__ = ("segment", "key", "size", "reuse")
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    REUSE_FIELD_NUMBER: _ClassVar[int]
    segment: str
    key: bytes
    size: int
    reuse: bool
    def __init__(self, segment: _Optional[str] = ..., key: _Optional[bytes] = ..., size: _Optional[int] = ..., reuse: _Optional[bool] = ...) -> None: ...

class SharedFrame(_message.Message):
    __slots__ = ("frame_index", "header", "offset", "capacity")
    FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    HEADER_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    frame_index: int
    header: ArrayHeader
    offset: int
    capacity: int
    def __init__(self, frame_index: _Optional[int] = ..., header: _Optional[_Union[ArrayHeader, _Mapping]] = ..., offset: _Optional[int] = ..., capacity: _Optional[int] = ...) -> None: ...

class DenoiseOptions(_message.Message):
    __slots__ = ("model_id", "modality", "gain", "offset", "frame_count", "tile_size", "shared_memory")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    MODALITY_FIELD_NUMBER: _ClassVar[int]
    GAIN_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    FRAME_COUNT_FIELD_NUMBER: _ClassVar[int]
    TILE_SIZE_FIELD_NUMBER: _ClassVar[int]
    SHARED_MEMORY_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    modality: str
    gain: float
    offset: float
    frame_count: int
    tile_size: int
    shared_memory: SharedMemory
    def __init__(self, model_id: _Optional[str] = ..., modality: _Optional[str] = ..., gain: _Optional[float] = ..., offset: _Optional[float] = ..., frame_count: _Optional[int] = ..., tile_size: _Optional[int] = ..., shared_memory: _Optional[_Union[SharedMemory, _Mapping]] = ...) -> None: ...

class DenoiseRequest(_message.Message):
    __slots__ = ("options", "chunk", "shared")
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    SHARED_FIELD_NUMBER: _ClassVar[int]
    options: DenoiseOptions
    chunk: FrameChunk
    shared: SharedFrame
    def __init__(self, options: _Optional[_Union[DenoiseOptions, _Mapping]] = ..., chunk: _Optional[_Union[FrameChunk, _Mapping]] = ..., shared: _Optional[_Union[SharedFrame, _Mapping]] = ...) -> None: ...

class JobInfo(_message.Message):
    __slots__ = ("model_id", "model_version", "graph_sha256", "emdenoise_version", "device", "shared_memory", "shared_memory_refused", "shared_memory_kept")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    GRAPH_SHA256_FIELD_NUMBER: _ClassVar[int]
    EMDENOISE_VERSION_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    SHARED_MEMORY_FIELD_NUMBER: _ClassVar[int]
    SHARED_MEMORY_REFUSED_FIELD_NUMBER: _ClassVar[int]
    SHARED_MEMORY_KEPT_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    model_version: str
    graph_sha256: str
    emdenoise_version: str
    device: str
    shared_memory: bool
    shared_memory_refused: str
    shared_memory_kept: bool
    def __init__(self, model_id: _Optional[str] = ..., model_version: _Optional[str] = ..., graph_sha256: _Optional[str] = ..., emdenoise_version: _Optional[str] = ..., device: _Optional[str] = ..., shared_memory: _Optional[bool] = ..., shared_memory_refused: _Optional[str] = ..., shared_memory_kept: _Optional[bool] = ...) -> None: ...

class DenoiseResponse(_message.Message):
    __slots__ = ("started", "chunk", "shared")
    STARTED_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    SHARED_FIELD_NUMBER: _ClassVar[int]
    started: JobInfo
    chunk: FrameChunk
    shared: SharedFrame
    def __init__(self, started: _Optional[_Union[JobInfo, _Mapping]] = ..., chunk: _Optional[_Union[FrameChunk, _Mapping]] = ..., shared: _Optional[_Union[SharedFrame, _Mapping]] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("id", "name", "task", "backend", "modality", "is_default", "version", "dose_range", "graph_sha256", "card_json")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    MODALITY_FIELD_NUMBER: _ClassVar[int]
    IS_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DOSE_RANGE_FIELD_NUMBER: _ClassVar[int]
    GRAPH_SHA256_FIELD_NUMBER: _ClassVar[int]
    CARD_JSON_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    task: str
    backend: str
    modality: str
    is_default: bool
    version: str
    dose_range: _containers.RepeatedScalarFieldContainer[float]
    graph_sha256: str
    card_json: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., task: _Optional[str] = ..., backend: _Optional[str] = ..., modality: _Optional[str] = ..., is_default: _Optional[bool] = ..., version: _Optional[str] = ..., dose_range: _Optional[_Iterable[float]] = ..., graph_sha256: _Optional[str] = ..., card_json: _Optional[str] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models", "device")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    device: str
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ..., device: _Optional[str] = ...) -> None: ...

class LikelihoodOptions(_message.Message):
    __slots__ = ("model_id", "modality", "gain", "offset", "polarity", "vacuum", "vacuum_level", "min_sigma", "max_sigma", "threshold", "map_units")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    MODALITY_FIELD_NUMBER: _ClassVar[int]
    GAIN_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    POLARITY_FIELD_NUMBER: _ClassVar[int]
    VACUUM_FIELD_NUMBER: _ClassVar[int]
    VACUUM_LEVEL_FIELD_NUMBER: _ClassVar[int]
    MIN_SIGMA_FIELD_NUMBER: _ClassVar[int]
    MAX_SIGMA_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MAP_UNITS_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    modality: str
    gain: float
    offset: float
    polarity: str
    vacuum: str
    vacuum_level: float
    min_sigma: float
    max_sigma: float
    threshold: float
    map_units: str
    def __init__(self, model_id: _Optional[str] = ..., modality: _Optional[str] = ..., gain: _Optional[float] = ..., offset: _Optional[float] = ..., polarity: _Optional[str] = ..., vacuum: _Optional[str] = ..., vacuum_level: _Optional[float] = ..., min_sigma: _Optional[float] = ..., max_sigma: _Optional[float] = ..., threshold: _Optional[float] = ..., map_units: _Optional[str] = ...) -> None: ...

class LikelihoodRequest(_message.Message):
    __slots__ = ("options", "chunk")
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    options: LikelihoodOptions
    chunk: FrameChunk
    def __init__(self, options: _Optional[_Union[LikelihoodOptions, _Mapping]] = ..., chunk: _Optional[_Union[FrameChunk, _Mapping]] = ...) -> None: ...

class LikelihoodRegion(_message.Message):
    __slots__ = ("id", "row", "col", "radius", "pixels", "intensity", "observed", "llr", "llr_per_pixel", "power")
    ID_FIELD_NUMBER: _ClassVar[int]
    ROW_FIELD_NUMBER: _ClassVar[int]
    COL_FIELD_NUMBER: _ClassVar[int]
    RADIUS_FIELD_NUMBER: _ClassVar[int]
    PIXELS_FIELD_NUMBER: _ClassVar[int]
    INTENSITY_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_FIELD_NUMBER: _ClassVar[int]
    LLR_FIELD_NUMBER: _ClassVar[int]
    LLR_PER_PIXEL_FIELD_NUMBER: _ClassVar[int]
    POWER_FIELD_NUMBER: _ClassVar[int]
    id: int
    row: float
    col: float
    radius: float
    pixels: int
    intensity: float
    observed: float
    llr: float
    llr_per_pixel: float
    power: float
    def __init__(self, id: _Optional[int] = ..., row: _Optional[float] = ..., col: _Optional[float] = ..., radius: _Optional[float] = ..., pixels: _Optional[int] = ..., intensity: _Optional[float] = ..., observed: _Optional[float] = ..., llr: _Optional[float] = ..., llr_per_pixel: _Optional[float] = ..., power: _Optional[float] = ...) -> None: ...

class LikelihoodSummary(_message.Message):
    __slots__ = ("regions", "vacuum_level", "vacuum_pixels", "polarity", "map_units", "message")
    REGIONS_FIELD_NUMBER: _ClassVar[int]
    VACUUM_LEVEL_FIELD_NUMBER: _ClassVar[int]
    VACUUM_PIXELS_FIELD_NUMBER: _ClassVar[int]
    POLARITY_FIELD_NUMBER: _ClassVar[int]
    MAP_UNITS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    regions: _containers.RepeatedCompositeFieldContainer[LikelihoodRegion]
    vacuum_level: float
    vacuum_pixels: int
    polarity: str
    map_units: str
    message: str
    def __init__(self, regions: _Optional[_Iterable[_Union[LikelihoodRegion, _Mapping]]] = ..., vacuum_level: _Optional[float] = ..., vacuum_pixels: _Optional[int] = ..., polarity: _Optional[str] = ..., map_units: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class LikelihoodResponse(_message.Message):
    __slots__ = ("started", "summary", "chunk")
    STARTED_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    started: JobInfo
    summary: LikelihoodSummary
    chunk: FrameChunk
    def __init__(self, started: _Optional[_Union[JobInfo, _Mapping]] = ..., summary: _Optional[_Union[LikelihoodSummary, _Mapping]] = ..., chunk: _Optional[_Union[FrameChunk, _Mapping]] = ...) -> None: ...

class TrainSeriesOptions(_message.Message):
    __slots__ = ("model_id", "server_path", "frame_count", "gain", "offset", "preset", "settings_json", "series_name", "recipe")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    SERVER_PATH_FIELD_NUMBER: _ClassVar[int]
    FRAME_COUNT_FIELD_NUMBER: _ClassVar[int]
    GAIN_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    PRESET_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_JSON_FIELD_NUMBER: _ClassVar[int]
    SERIES_NAME_FIELD_NUMBER: _ClassVar[int]
    RECIPE_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    server_path: str
    frame_count: int
    gain: float
    offset: float
    preset: str
    settings_json: str
    series_name: str
    recipe: str
    def __init__(self, model_id: _Optional[str] = ..., server_path: _Optional[str] = ..., frame_count: _Optional[int] = ..., gain: _Optional[float] = ..., offset: _Optional[float] = ..., preset: _Optional[str] = ..., settings_json: _Optional[str] = ..., series_name: _Optional[str] = ..., recipe: _Optional[str] = ...) -> None: ...

class TrainSeriesRequest(_message.Message):
    __slots__ = ("options", "chunk")
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    options: TrainSeriesOptions
    chunk: FrameChunk
    def __init__(self, options: _Optional[_Union[TrainSeriesOptions, _Mapping]] = ..., chunk: _Optional[_Union[FrameChunk, _Mapping]] = ...) -> None: ...

class TrainingJob(_message.Message):
    __slots__ = ("job_id", "state", "model_id", "message")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    state: str
    model_id: str
    message: str
    def __init__(self, job_id: _Optional[str] = ..., state: _Optional[str] = ..., model_id: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class TrainingJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class ListTrainingJobsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListTrainingJobsResponse(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[TrainingJob]
    def __init__(self, jobs: _Optional[_Iterable[_Union[TrainingJob, _Mapping]]] = ...) -> None: ...

class TrainingEvent(_message.Message):
    __slots__ = ("job_id", "kind", "state", "step", "total_steps", "losses", "css", "paired_mse", "elapsed_seconds", "eta_seconds", "message", "model_id", "thinned_mse", "held_out_mse", "classical_mse")
    class LossesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    TOTAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    LOSSES_FIELD_NUMBER: _ClassVar[int]
    CSS_FIELD_NUMBER: _ClassVar[int]
    PAIRED_MSE_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ETA_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    THINNED_MSE_FIELD_NUMBER: _ClassVar[int]
    HELD_OUT_MSE_FIELD_NUMBER: _ClassVar[int]
    CLASSICAL_MSE_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    kind: str
    state: str
    step: int
    total_steps: int
    losses: _containers.ScalarMap[str, float]
    css: float
    paired_mse: float
    elapsed_seconds: float
    eta_seconds: float
    message: str
    model_id: str
    thinned_mse: float
    held_out_mse: float
    classical_mse: float
    def __init__(self, job_id: _Optional[str] = ..., kind: _Optional[str] = ..., state: _Optional[str] = ..., step: _Optional[int] = ..., total_steps: _Optional[int] = ..., losses: _Optional[_Mapping[str, float]] = ..., css: _Optional[float] = ..., paired_mse: _Optional[float] = ..., elapsed_seconds: _Optional[float] = ..., eta_seconds: _Optional[float] = ..., message: _Optional[str] = ..., model_id: _Optional[str] = ..., thinned_mse: _Optional[float] = ..., held_out_mse: _Optional[float] = ..., classical_mse: _Optional[float] = ...) -> None: ...

class EncodeOptions(_message.Message):
    __slots__ = ("model_id", "frame_count")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    FRAME_COUNT_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    frame_count: int
    def __init__(self, model_id: _Optional[str] = ..., frame_count: _Optional[int] = ...) -> None: ...

class EncodeRequest(_message.Message):
    __slots__ = ("options", "chunk")
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    options: EncodeOptions
    chunk: FrameChunk
    def __init__(self, options: _Optional[_Union[EncodeOptions, _Mapping]] = ..., chunk: _Optional[_Union[FrameChunk, _Mapping]] = ...) -> None: ...

class LatentFormat(_message.Message):
    __slots__ = ("job", "encoder_sha256", "decoder_sha256", "depth", "tile_size", "latent_side", "normalization")
    JOB_FIELD_NUMBER: _ClassVar[int]
    ENCODER_SHA256_FIELD_NUMBER: _ClassVar[int]
    DECODER_SHA256_FIELD_NUMBER: _ClassVar[int]
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    TILE_SIZE_FIELD_NUMBER: _ClassVar[int]
    LATENT_SIDE_FIELD_NUMBER: _ClassVar[int]
    NORMALIZATION_FIELD_NUMBER: _ClassVar[int]
    job: JobInfo
    encoder_sha256: str
    decoder_sha256: str
    depth: int
    tile_size: int
    latent_side: int
    normalization: str
    def __init__(self, job: _Optional[_Union[JobInfo, _Mapping]] = ..., encoder_sha256: _Optional[str] = ..., decoder_sha256: _Optional[str] = ..., depth: _Optional[int] = ..., tile_size: _Optional[int] = ..., latent_side: _Optional[int] = ..., normalization: _Optional[str] = ...) -> None: ...

class LatentFrame(_message.Message):
    __slots__ = ("frame_index", "height", "width", "shift", "scale")
    FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    SHIFT_FIELD_NUMBER: _ClassVar[int]
    SCALE_FIELD_NUMBER: _ClassVar[int]
    frame_index: int
    height: int
    width: int
    shift: _containers.RepeatedScalarFieldContainer[float]
    scale: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, frame_index: _Optional[int] = ..., height: _Optional[int] = ..., width: _Optional[int] = ..., shift: _Optional[_Iterable[float]] = ..., scale: _Optional[_Iterable[float]] = ...) -> None: ...

class EncodeResponse(_message.Message):
    __slots__ = ("started", "frame", "chunk")
    STARTED_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    started: LatentFormat
    frame: LatentFrame
    chunk: FrameChunk
    def __init__(self, started: _Optional[_Union[LatentFormat, _Mapping]] = ..., frame: _Optional[_Union[LatentFrame, _Mapping]] = ..., chunk: _Optional[_Union[FrameChunk, _Mapping]] = ...) -> None: ...

class DecodeOptions(_message.Message):
    __slots__ = ("model_id", "encoder_sha256", "frame_count")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    ENCODER_SHA256_FIELD_NUMBER: _ClassVar[int]
    FRAME_COUNT_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    encoder_sha256: str
    frame_count: int
    def __init__(self, model_id: _Optional[str] = ..., encoder_sha256: _Optional[str] = ..., frame_count: _Optional[int] = ...) -> None: ...

class DecodeRequest(_message.Message):
    __slots__ = ("options", "frame", "chunk")
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    options: DecodeOptions
    frame: LatentFrame
    chunk: FrameChunk
    def __init__(self, options: _Optional[_Union[DecodeOptions, _Mapping]] = ..., frame: _Optional[_Union[LatentFrame, _Mapping]] = ..., chunk: _Optional[_Union[FrameChunk, _Mapping]] = ...) -> None: ...

class DecodeResponse(_message.Message):
    __slots__ = ("started", "chunk")
    STARTED_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    started: JobInfo
    chunk: FrameChunk
    def __init__(self, started: _Optional[_Union[JobInfo, _Mapping]] = ..., chunk: _Optional[_Union[FrameChunk, _Mapping]] = ...) -> None: ...
