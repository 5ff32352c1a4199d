"""Tests for the video stack: probing, frame-exact random access, sequential decode, dask."""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest

from napari_dinotrack.io import video as video_mod
from napari_dinotrack.io.video import (
    VIDEO_SUFFIXES,
    VideoError,
    VideoInfo,
    VideoReader,
    lazy_video,
    probe_video,
    write_video,
)

N_FRAMES = 45
H, W = 48, 64
CHUNK = 8
DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"

# The frame number is burned in as 8 bits, one big block per bit (4 columns x 2 rows), which
# survives any sane compression; the background colour varies too so pixels differ per frame.
GRID_ROWS, GRID_COLS = 2, 4


def make_frames(n: int, h: int = H, w: int = W) -> np.ndarray:
    frames = np.zeros((n, h, w, 3), np.uint8)
    bh, bw = h // GRID_ROWS, w // GRID_COLS
    for i in range(n):
        frames[i, ..., 0] = (i * 37) % 200 + 20
        frames[i, ..., 2] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]
        for bit in range(GRID_ROWS * GRID_COLS):
            r, c = divmod(bit, GRID_COLS)
            frames[i, r * bh : (r + 1) * bh, c * bw : (c + 1) * bw, 1] = 235 if (i >> bit) & 1 else 20
    return frames


def frame_number(frame: np.ndarray) -> int:
    h, w = frame.shape[:2]
    bh, bw = h // GRID_ROWS, w // GRID_COLS
    mh, mw = bh // 4, bw // 4  # read block centres only, away from compression edges
    value = 0
    for bit in range(GRID_ROWS * GRID_COLS):
        r, c = divmod(bit, GRID_COLS)
        block = frame[r * bh + mh : (r + 1) * bh - mh, c * bw + mw : (c + 1) * bw - mw, 1]
        if block.mean() > 128:
            value |= 1 << bit
    return value


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("videos")
    frames = make_frames(N_FRAMES)
    return {
        "main": write_video(d / "numbered.mp4", frames, fps=15.0),
        "ntsc": write_video(d / "ntsc.mp4", frames, fps=30000 / 1001),
        "odd": write_video(d / "odd.mp4", make_frames(20, 121, 161), fps=10.0),
    }


@pytest.fixture(scope="module")
def sequential(videos: dict[str, Path]) -> np.ndarray:
    with VideoReader(videos["main"]) as reader:
        return np.stack([f for _, f in reader.iter_frames()])


def wait_for_threads(baseline: int, timeout: float = 1.0) -> int:
    deadline = time.monotonic() + timeout
    while threading.active_count() > baseline and time.monotonic() < deadline:
        time.sleep(0.01)
    return threading.active_count()


# --------------------------------------------------------------------------- probing


def test_probe_exact_count_fps_size(videos: dict[str, Path]) -> None:
    info = probe_video(videos["main"])
    assert isinstance(info, VideoInfo)
    assert (info.n_frames, info.width, info.height) == (N_FRAMES, W, H)
    assert info.fps == pytest.approx(15.0)
    assert info.shape == (N_FRAMES, H, W, 3)
    assert info.path == videos["main"]
    assert probe_video(str(videos["main"])) is info  # cached per unchanged file
    assert probe_video(videos["ntsc"]).fps == pytest.approx(29.97, abs=0.01)
    assert ".mp4" in VIDEO_SUFFIXES


def test_probe_cache_invalidated_on_rewrite(tmp_path: Path) -> None:
    path = write_video(tmp_path / "v.mp4", make_frames(5))
    assert probe_video(path).n_frames == 5
    write_video(path, make_frames(7))
    assert probe_video(path).n_frames == 7


# --------------------------------------------------------------------------- random access


def test_sequential_decode_is_numbered(sequential: np.ndarray) -> None:
    assert sequential.shape == (N_FRAMES, H, W, 3)
    assert sequential.dtype == np.uint8
    assert [frame_number(f) for f in sequential] == list(range(N_FRAMES))


@pytest.mark.parametrize("which", ["main", "ntsc"])
def test_random_access_matches_sequential_for_every_frame(
    videos: dict[str, Path], sequential: np.ndarray, which: str
) -> None:
    # cache_chunks=1 and a shuffled chunk order force a real seek for every chunk.
    with VideoReader(videos[which], chunk_size=CHUNK, cache_chunks=1) as reader:
        order = list(range(reader.n_chunks))
        random.Random(0).shuffle(order)
        for c in order:
            for i in reversed(range(c * CHUNK, min((c + 1) * CHUNK, N_FRAMES))):
                frame = reader.get_frame(i)
                assert frame_number(frame) == i
                np.testing.assert_array_equal(frame, sequential[i])


@pytest.mark.parametrize("suffix", [".avi", ".mkv", ".mov"])
def test_random_access_every_frame_other_containers(tmp_path: Path, suffix: str) -> None:
    # Containers round timestamps differently (avi: 1/fps ticks, mkv: milliseconds); a seek
    # per frame checks that no frame is dropped or repeated at any position.
    assert suffix in VIDEO_SUFFIXES
    path = write_video(tmp_path / f"v{suffix}", make_frames(12), fps=30000 / 1001)
    with VideoReader(path, chunk_size=1, cache_chunks=1) as reader:
        assert reader.n_frames == 12
        assert [frame_number(reader.get_frame(i)) for i in range(12)] == list(range(12))


def test_chunks_boundaries_and_last_partial_chunk(videos: dict[str, Path], sequential: np.ndarray) -> None:
    with VideoReader(videos["main"], chunk_size=CHUNK) as reader:
        assert reader.n_chunks == 6
        last = reader.read_chunk(5)
        assert last.shape == (N_FRAMES - 5 * CHUNK, H, W, 3)
        assert not last.flags.writeable
        np.testing.assert_array_equal(last, sequential[40:])
        np.testing.assert_array_equal(reader.read_chunk(0), sequential[:CHUNK])

        span = reader.get_frames(6, 18)  # crosses two chunk boundaries
        assert [frame_number(f) for f in span] == list(range(6, 18))
        assert not span.flags.writeable
        np.testing.assert_array_equal(reader.get_frames(8, 16), sequential[8:16])
        assert reader.get_frames(3, 3).shape == (0, H, W, 3)
        np.testing.assert_array_equal(reader.get_frame(-1), sequential[-1])
        np.testing.assert_array_equal(reader[7], sequential[7])


def test_lru_cache_is_bounded(videos: dict[str, Path]) -> None:
    with VideoReader(videos["main"], chunk_size=4, cache_chunks=3) as reader:
        for c in range(reader.n_chunks):
            reader.read_chunk(c)
            assert len(reader.cached_chunks()) <= 3
        assert reader.cached_chunks() == [reader.n_chunks - 3, reader.n_chunks - 2, reader.n_chunks - 1]
        hit = reader.read_chunk(reader.n_chunks - 3)
        assert reader.read_chunk(reader.n_chunks - 3) is hit  # served from cache
        assert reader.cached_chunks()[-1] == reader.n_chunks - 3  # now most recent
    assert reader.cached_chunks() == []  # close() frees memory


def test_concurrent_reads_are_consistent(videos: dict[str, Path], sequential: np.ndarray) -> None:
    with VideoReader(videos["main"], chunk_size=CHUNK, cache_chunks=2) as reader:
        indices = [0, 44, 9, 9, 9, 30, 17, 1, 40, 25] * 2
        with ThreadPoolExecutor(4) as pool:
            frames = list(pool.map(reader.get_frame, indices))
        for i, f in zip(indices, frames, strict=True):
            np.testing.assert_array_equal(f, sequential[i])
        assert len(reader.cached_chunks()) <= 2


# --------------------------------------------------------------------------- sequential


def test_iter_frames_from_middle(videos: dict[str, Path], sequential: np.ndarray) -> None:
    with VideoReader(videos["main"]) as reader:
        got = list(reader.iter_frames(17, 30, prefetch=4))
        assert [i for i, _ in got] == list(range(17, 30))
        assert [frame_number(f) for _, f in got] == list(range(17, 30))
        np.testing.assert_array_equal(np.stack([f for _, f in got]), sequential[17:30])
        tail = [i for i, _ in reader.iter_frames(40)]
        assert tail == list(range(40, N_FRAMES))
        assert list(reader.iter_frames(10, 10)) == []


@pytest.mark.parametrize("how", ["break", "close"])
def test_iter_frames_early_exit_stops_thread(videos: dict[str, Path], how: str) -> None:
    with VideoReader(videos["main"]) as reader:
        baseline = threading.active_count()
        it = reader.iter_frames(prefetch=2)
        if how == "break":
            for i, _ in it:
                if i == 3:
                    break
            del it
        else:
            next(it)
            time.sleep(0.1)  # let the producer fill the queue and block on it
            it.close()
        assert wait_for_threads(baseline) <= baseline
        assert not [t for t in threading.enumerate() if t.name.startswith("dinotrack-decode")]


def test_iter_frames_error_is_raised_in_consumer(videos: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_reader(*args: object, **kwargs: object):
        yield {"size": (W, H), "fps": 15.0}
        yield bytes(W * H * 3)
        raise RuntimeError("Could not read frame 2: simulated corruption")

    with VideoReader(videos["main"]) as reader:
        monkeypatch.setattr(video_mod.imageio_ffmpeg, "read_frames", broken_reader)
        got = []
        with pytest.raises(VideoError, match=r"numbered\.mp4.*simulated corruption"):
            for i, _ in reader.iter_frames():
                got.append(i)
        assert got == [0]


def test_iter_frames_tolerates_wrong_frame_count(videos: dict[str, Path]) -> None:
    with VideoReader(videos["main"]) as reader:
        # Stream shorter than expected: stop cleanly at the real end.
        reader.info = dataclasses.replace(reader.info, n_frames=N_FRAMES + 5)
        assert [i for i, _ in reader.iter_frames(40)] == list(range(40, N_FRAMES))
        # Container longer than counted: extra frames are ignored.
        reader.info = dataclasses.replace(reader.info, n_frames=N_FRAMES - 5)
        assert [i for i, _ in reader.iter_frames()] == list(range(N_FRAMES - 5))


# --------------------------------------------------------------------------- dask


def test_lazy_video(videos: dict[str, Path], sequential: np.ndarray) -> None:
    with VideoReader(videos["main"], chunk_size=CHUNK) as reader:
        arr = lazy_video(reader)
        assert arr.shape == (N_FRAMES, H, W, 3)
        assert arr.dtype == np.uint8
        assert arr.chunks == ((8, 8, 8, 8, 8, 5), (H,), (W,), (3,))
        np.testing.assert_array_equal(np.asarray(arr[5]), sequential[5])
        np.testing.assert_array_equal(arr[3:11].compute(), sequential[3:11])
        assert set(reader.cached_chunks()) == {0, 1}  # blocks go through the reader's cache
        np.testing.assert_array_equal(arr[-1].compute(), sequential[-1])

    by_path = lazy_video(videos["main"], chunk_size=16)
    assert by_path.chunks[0] == (16, 16, 13)
    np.testing.assert_array_equal(by_path[20:34].compute(), sequential[20:34])

    with VideoReader(videos["main"], chunk_size=CHUNK) as reader:
        mismatched = lazy_video(reader, chunk_size=5)
        assert mismatched.chunks[0] == (5,) * 9
        np.testing.assert_array_equal(mismatched[4:12].compute(), sequential[4:12])


# --------------------------------------------------------------------------- formats


def test_grayscale_video_decodes_to_rgb(tmp_path: Path) -> None:
    gray = make_frames(6)[..., 1]
    path = tmp_path / "gray.mkv"
    writer = imageio_ffmpeg.write_frames(
        str(path),
        (W, H),
        pix_fmt_in="gray",
        pix_fmt_out="gray",
        codec="ffv1",
        fps=10,
        macro_block_size=1,
    )
    writer.send(None)
    for f in gray:
        writer.send(np.ascontiguousarray(f))
    writer.close()
    with VideoReader(path) as reader:
        frame = reader.get_frame(4)
        assert frame.shape == (H, W, 3)
        np.testing.assert_array_equal(frame[..., 0], gray[4])
        np.testing.assert_array_equal(frame[..., 0], frame[..., 2])
        assert len(list(reader.iter_frames())) == 6

    # write_video accepts (T, H, W) too.
    path2 = write_video(tmp_path / "gray2.mp4", gray)
    with VideoReader(path2) as reader:
        assert reader.get_frame(0).shape == (H, W, 3)
        assert frame_number(reader.get_frame(5)) == 5


def test_odd_size_video(videos: dict[str, Path]) -> None:
    info = probe_video(videos["odd"])
    assert (info.n_frames, info.width, info.height) == (20, 161, 121)
    with VideoReader(videos["odd"], chunk_size=6, cache_chunks=1) as reader:
        seq = np.stack([f for _, f in reader.iter_frames()])
        assert seq.shape == (20, 121, 161, 3)
        assert [frame_number(f) for f in seq] == list(range(20))
        for i in (19, 7, 12, 0):
            np.testing.assert_array_equal(reader.get_frame(i), seq[i])


def test_write_video_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="uint8"):
        write_video(tmp_path / "f.mp4", np.zeros((2, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\)"):
        write_video(tmp_path / "f.mp4", np.zeros((2, 8, 8, 4), np.uint8))


# --------------------------------------------------------------------------- errors


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(VideoError, match=r"not found.*nope\.mp4"):
        probe_video(tmp_path / "nope.mp4")
    with pytest.raises(VideoError, match=r"nope\.mp4"):
        VideoReader(tmp_path / "nope.mp4")
    with pytest.raises(VideoError, match="folder"):
        probe_video(tmp_path)


def test_not_a_video(tmp_path: Path) -> None:
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is not a video\n" * 50)
    with pytest.raises(VideoError, match=r"notes\.mp4"):
        probe_video(fake)
    with pytest.raises(ValueError):  # VideoError is a ValueError
        VideoReader(fake)


def test_index_out_of_range(videos: dict[str, Path]) -> None:
    with VideoReader(videos["main"]) as reader:
        with pytest.raises(VideoError, match=r"frame index 45 .*numbered.mp4.*45 frames"):
            reader.get_frame(N_FRAMES)
        with pytest.raises(VideoError, match="out of range"):
            reader.get_frame(-N_FRAMES - 1)
        with pytest.raises(VideoError, match="out of range"):
            reader.read_chunk(reader.n_chunks)
        with pytest.raises(VideoError, match="out of range"):
            reader.get_frames(40, N_FRAMES + 1)
        with pytest.raises(VideoError, match="out of range"):
            reader.iter_frames(0, N_FRAMES + 1)
        with pytest.raises(TypeError):
            reader.get_frame(1.5)  # type: ignore[arg-type]
    with pytest.raises(VideoError, match="closed"):
        reader.get_frame(0)


# --------------------------------------------------------------------------- real data


def test_real_video_openfield() -> None:
    path = DATA / "dlc_openfield_m4s1" / "video.mp4"
    if not path.exists():
        pytest.skip(f"{path} not available")
    info = probe_video(path)
    assert (info.n_frames, info.width, info.height) == (116, 640, 480)
    with VideoReader(path, chunk_size=8, cache_chunks=2) as reader:
        wanted = [0, 7, 8, 57, 100, 115]
        seq = {i: f.copy() for i, f in reader.iter_frames() if i in wanted}
        assert len(seq) == len(wanted)
        for i in reversed(wanted):
            np.testing.assert_array_equal(reader.get_frame(i), seq[i])


# --------------------------------------------------------------------------- variable frame rate


@pytest.mark.parametrize(
    ("suffix", "style"), [(".mp4", "jitter"), (".mkv", "jitter"), (".avi", "jitter"), (".mp4", "collisions")]
)
def test_variable_frame_rate_every_frame_by_every_access(tmp_path: Path, vfr_video, suffix: str, style: str) -> None:
    path = vfr_video(make_frames(40), tmp_path / f"vfr{suffix}", style=style)
    info = probe_video(path)
    assert info.n_frames == 40
    gaps = np.diff(info.timestamps) * 30
    assert gaps.max() > 3 and gaps.min() < 0.8  # really irregular, and pauses
    with VideoReader(path, chunk_size=1, cache_chunks=1) as reader:
        sequential = [frame_number(f) for _, f in reader.iter_frames()]
        assert sequential == list(range(40))
        assert [frame_number(reader.get_frame(i)) for i in range(40)] == sequential
        assert [frame_number(next(iter(reader.iter_frames(i)))[1]) for i in range(40)] == sequential
        assert [i for i, f in reader.iter_frames(17, 23)] == list(range(17, 23))
        assert [frame_number(f) for _, f in reader.iter_frames(17, 23)] == list(range(17, 23))
    with VideoReader(path, chunk_size=3) as reader:
        stack = lazy_video(reader).compute()
        assert [frame_number(f) for f in stack] == sequential
        assert [frame_number(f) for f in lazy_video(reader, chunk_size=5)[11:29].compute()] == list(range(11, 29))


def test_seeks_where_timestamps_go_backwards_count_from_an_earlier_frame() -> None:
    pts = np.array([0, 10, 20, 5, 30, 40, 50])  # frame 3 was stamped before frame 2
    info = VideoInfo(Path("x.mp4"), len(pts), 10.0, 8, 8, pts=pts, time_base=0.01)
    assert video_mod._seek(info, 5, 7) == (["-ss", "0.355000"], 0)  # plain midpoint seek
    params, skip = video_mod._seek(info, 3, 5)  # frame 3 (pts 5) would be dropped by any seek past 5
    assert skip > 0 and (params == [] or float(params[1]) / 0.01 <= 5)
    params, skip = video_mod._seek(info, 4, 5)
    assert (params, skip) == (["-ss", "0.255000"], 0)  # after the hiccup: exact again


def test_a_protocol_looking_name_is_read_as_a_plain_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # a relative name, as typed in a shell
    write_video(Path("a.mp4"), make_frames(9), fps=10.0)
    own = write_video(Path("own.mp4"), make_frames(6), fps=10.0)
    tricky = Path("concat:a.mp4|a.mp4")
    tricky.write_bytes(own.read_bytes())
    info = probe_video(tricky)
    assert info.n_frames == 6  # its own 6 frames, not a.mp4 read through ffmpeg's concat protocol
    with VideoReader(tricky) as reader:
        assert [frame_number(f) for _, f in reader.iter_frames()] == list(range(6))
        assert frame_number(reader.get_frame(4)) == 4
    written = write_video(Path("file:out.mp4"), make_frames(3), fps=10.0)
    assert written.exists() and probe_video(written).n_frames == 3


def test_error_messages_do_not_start_with_ffmpegs_banner(tmp_path: Path) -> None:
    fake = tmp_path / "notes.mp4"
    fake.write_bytes(b"\x00" * 100)
    with pytest.raises(VideoError) as info:
        probe_video(fake)
    message = str(info.value)
    assert "ffmpeg version" not in message and "configuration:" not in message and "@ 0x" not in message
    assert "notes.mp4" in message and "Invalid data" in message
