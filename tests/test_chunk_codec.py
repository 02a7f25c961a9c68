"""The Denoise chunk codec (emdenoise.chunk_codec): protobuf's own bytes both ways, and the same results
end to end through real servers on 127.0.0.1, between codec and stock protobuf ends in every pairing."""

from __future__ import annotations

import itertools
from concurrent import futures

import grpc
import numpy as np
import pytest
from google.protobuf.message import DecodeError

from emdenoise import chunk_codec
from emdenoise.chunk_codec import ChunkMessage, RawChunk, chunk_messages, encode_chunk, parse_request, parse_response
from emdenoise.client import EmbeddedClient, RemoteClient
from emdenoise.server.service import DenoiserService
from emdenoise.v1 import denoiser_pb2 as pb
from emdenoise.v1 import denoiser_pb2_grpc as pb_grpc
from emdenoise.wire import CHUNK_BYTES, FrameAssembler, frame_to_chunks

MODEL = "ede-kernel-stem-5"
HEADERS = [None, pb.ArrayHeader(), pb.ArrayHeader(dtype="uint16", shape=[1024, 1024]),
           pb.ArrayHeader(dtype="float32", shape=[0, 3]), pb.ArrayHeader(dtype="uint8", shape=[2**40, 1])]


def stock_chunk(frame_index, chunk_index, chunk_count, header, data) -> pb.FrameChunk:
    chunk = pb.FrameChunk(frame_index=frame_index, chunk_index=chunk_index, chunk_count=chunk_count, data=data)
    if header is not None:
        chunk.header.CopyFrom(header)
    return chunk


CASES = [
    (frame_index, chunk_index, chunk_count, header, data)
    for frame_index, chunk_index, chunk_count, header, data in itertools.product(
        [0, 1, 127, 128, 300, 2**40, 2**64 - 1], [0, 1, 200], [0, 1, 2, 2**32 - 1], HEADERS,
        [b"", b"\x00", bytes(range(256)) * 3],
    )
]


@pytest.mark.parametrize("kind", [pb.DenoiseRequest, pb.DenoiseResponse])
def test_encoded_chunk_is_protobufs_own_bytes(kind):
    for frame_index, chunk_index, chunk_count, header, data in CASES:
        stock = kind(chunk=stock_chunk(frame_index, chunk_index, chunk_count, header, data)).SerializeToString()
        raw = RawChunk(frame_index, chunk_index, chunk_count, header, memoryview(data))
        assert encode_chunk(raw) == stock
        assert chunk_codec.serialize(ChunkMessage(raw)) == stock


def test_a_2_mib_chunk_is_protobufs_own_bytes():
    frame = np.random.default_rng(0).integers(0, 65535, (1024, 1024), dtype=np.uint16)
    (stock,) = frame_to_chunks(frame, 5)
    (fast,) = chunk_messages(frame, 5)
    assert chunk_codec.serialize(fast) == pb.DenoiseResponse(chunk=stock).SerializeToString()


@pytest.mark.parametrize("parse, kind", [(parse_request, pb.DenoiseRequest), (parse_response, pb.DenoiseResponse)])
def test_parsed_chunk_equals_protobufs_parse(parse, kind):
    for case in CASES:
        wire = kind(chunk=stock_chunk(*case)).SerializeToString()
        parsed = parse(wire)
        assert isinstance(parsed, ChunkMessage) and parsed.WhichOneof("item") == "chunk"
        stock = kind.FromString(wire).chunk
        assert parsed.chunk.to_message() == stock
        assert parsed.chunk.HasField("header") == stock.HasField("header")
        assert parsed.chunk.header == stock.header
        assert bytes(parsed.chunk.data) == stock.data


def test_other_messages_are_left_to_protobuf():
    chunk = stock_chunk(3, 1, 2, HEADERS[2], b"abc")
    messages = [
        pb.DenoiseRequest(options=pb.DenoiseOptions(model_id=MODEL, frame_count=4)),
        pb.DenoiseRequest(shared=pb.SharedFrame(frame_index=1, offset=4096, capacity=8192)),
        pb.DenoiseResponse(started=pb.JobInfo(model_id=MODEL, shared_memory=True)),
        pb.DenoiseRequest(),
    ]
    for message in messages:
        parsed = parser_for(message)(message.SerializeToString())
        assert type(parsed) is type(message) and parsed == message
    body = chunk.SerializeToString()
    unusual = [
        body + b"\x08\x07",  # frame_index twice: the last one wins
        body + b"\x22\x04\x0a\x02u8",  # header twice: merged
        body + b"\x30\x01",  # a field this version does not know
        b"\x12\x00\x12" + bytes([len(body)]) + body,  # chunk twice: merged
    ]
    for tail in unusual:
        wire = tail if tail.startswith(b"\x12") else b"\x12" + bytes([len(tail)]) + tail
        parsed = parse_response(wire)
        assert isinstance(parsed, pb.DenoiseResponse)
        assert parsed == pb.DenoiseResponse.FromString(wire)


def parser_for(message):
    return parse_request if isinstance(message, pb.DenoiseRequest) else parse_response


def test_fields_in_another_order_read_as_protobuf_reads_them():
    body = b"\x2a\x02hi" + b"\x18\x02" + b"\x22\x0b\x0a\x07float32\x12\x00" + b"\x10\x01" + b"\x08\x09"
    wire = b"\x12" + bytes([len(body)]) + body
    assert parse_response(wire).chunk.to_message() == pb.DenoiseResponse.FromString(wire).chunk


@pytest.mark.parametrize("wire", [b"\x12\x05\x08", b"\x12\x03\x2a\x09ab", b"\x12\x02\x08\xff", b"\xff\xff"])
def test_broken_messages_fail_as_protobuf_fails(wire):
    with pytest.raises(DecodeError):
        pb.DenoiseResponse.FromString(wire)
    with pytest.raises(DecodeError):
        parse_response(wire)


@pytest.mark.parametrize("frame", [
    np.arange(12, dtype=np.uint8).reshape(3, 4),
    np.random.default_rng(1).random((1024, 1024), dtype=np.float32),  # two chunks
    np.random.default_rng(2).integers(0, 65535, (700, 900)).astype(">u2"),  # big-endian
    np.random.default_rng(3).random((64, 80))[:, ::2],  # not contiguous
    np.zeros((0, 5), np.float32),
])
def test_chunk_messages_are_frame_to_chunks_and_reassemble(frame):
    chunk_bytes = 1000 if frame.size < 100 else CHUNK_BYTES
    stock = list(frame_to_chunks(frame, 7, chunk_bytes=chunk_bytes))
    fast = list(chunk_messages(frame, 7, chunk_bytes=chunk_bytes))
    assert [m.chunk.to_message() for m in fast] == stock
    assembler = FrameAssembler()
    for message in fast:
        received = parse_request(chunk_codec.serialize(message))
        assembler.next_frame = 7
        result = assembler.add(received.chunk)
    np.testing.assert_array_equal(result, frame)
    assert result.dtype == frame.dtype.newbyteorder("=")


class StockService(DenoiserService):
    """Results as protobuf messages, for protobuf's own serializer (as servers before the codec)."""

    def Denoise(self, request_iterator, context):
        for response in super().Denoise(request_iterator, context):
            yield pb.DenoiseResponse(chunk=response.chunk.to_message()) if isinstance(response, ChunkMessage) else response


@pytest.fixture(scope="module")
def stock_server():
    """A server registered with protobuf's own (de)serializers (the generated code), on 127.0.0.1."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    pb_grpc.add_DenoiserServicer_to_server(StockService(EmbeddedClient(device="cpu").engine), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(None)


STACKS = {
    "uint16": np.random.default_rng(20).poisson(20, (3, 1024, 1024)).astype(np.uint16),
    "float32": np.random.default_rng(21).gamma(4.0, 5.0, (2, 1024, 1024)).astype(np.float32),
    "uint8": np.random.default_rng(22).poisson(9, (3, 300, 257)).astype(np.uint8),
}


@pytest.fixture(scope="module")
def expected():
    engine = EmbeddedClient(device="cpu").engine
    return {name: [engine.denoise_frame(frame, engine.card(MODEL)) for frame in stack] for name, stack in STACKS.items()}


def stock_denoise(address: str, stack: np.ndarray) -> list[np.ndarray]:
    """A client of protobuf's own serializers (the generated stub), as clients before the codec."""
    def requests():
        yield pb.DenoiseRequest(options=pb.DenoiseOptions(model_id=MODEL, frame_count=len(stack)))
        for index, frame in enumerate(stack):
            for chunk in frame_to_chunks(frame, index):
                yield pb.DenoiseRequest(chunk=chunk)

    with grpc.insecure_channel(address) as channel:
        assembler, frames = FrameAssembler(), []
        for response in pb_grpc.DenoiserStub(channel).Denoise(requests(), timeout=120):
            if response.WhichOneof("item") == "chunk":
                frame = assembler.add(response.chunk)
                if frame is not None:
                    frames.append(frame)
    return frames


@pytest.mark.parametrize("dtype", sorted(STACKS))
def test_codec_client_and_server_bit_identical_to_in_process(server, expected, dtype):
    with RemoteClient(server.address, shared_memory="off") as client:
        results = list(client.denoise(STACKS[dtype], MODEL, frame_count=len(STACKS[dtype])))
    assert client.last_transport == "messages"
    assert len(results) == len(expected[dtype])
    for got, want in zip(results, expected[dtype]):
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", ["uint16", "float32"])
def test_stock_client_of_codec_server_and_codec_client_of_stock_server(server, stock_server, expected, dtype):
    for got, want in zip(stock_denoise(server.address, STACKS[dtype]), expected[dtype]):
        np.testing.assert_array_equal(got, want)
    with RemoteClient(stock_server, shared_memory="off") as client:
        results = list(client.denoise(STACKS[dtype], MODEL))
    assert len(results) == len(expected[dtype])
    for got, want in zip(results, expected[dtype]):
        np.testing.assert_array_equal(got, want)
