"""The stage table: one declaration per stage, read by the runner, queueing, reconciler and review.

Adding a stage is one `Stage(...)` entry here plus its work function in `work.py`;
tests/pipeline/test_stages.py checks every entry against the clip state machine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from clipper.context import Context
from clipper.pipeline import work
from clipper.storage.tables import Clip


@dataclass(frozen=True)
class Stage:
    """One step of the pipeline."""

    name: str
    queue: str
    status: str
    """The clip status shown while this stage is the one the clip waits on."""
    starts_in: frozenset[str]
    """Clip statuses in which a job of this stage may run (others exit as stale)."""
    then: tuple[str, ...]
    """Stages queued when this one finishes (side by side when more than one)."""
    finishes_as: frozenset[str]
    """Statuses `advance` may move the clip to (checked against the state machine)."""
    progress: tuple[float, float]
    """The share of the clip's progress bar this stage fills."""
    work: Callable[[Context, work.StageInput], work.StageOutput]
    advance: Callable[[Session, Clip], str | None]
    """The clip's status once the stage's result is written (None: stays as it is)."""
    timeout: int | None = None
    """Seconds before a stuck job is killed; None: CLIPPER_JOB_TIMEOUT."""
    done_for: Callable[[Session, Clip], bool] | None = None
    """For a stage that runs beside another: whether this clip version already has its result."""

    def due(self, session: Session, clip: Clip) -> bool:
        """Whether a clip in its current status needs a job of this stage."""
        if clip.status not in self.starts_in:
            return False
        return not (self.done_for and self.done_for(session, clip))


STAGES: dict[str, Stage] = {s.name: s for s in (
    Stage("fetch", queue="fetch", status="fetching", starts_in=frozenset({"queued", "fetching"}),
          # The transcription first: with two workers the idle one (the one holding Whisper)
          # takes it at once, and the one that fetched goes on to cut.
          then=("asr", "cut"), finishes_as=frozenset({"cutting"}), progress=(0.0, 0.3),
          work=work.fetch, advance=work.after_fetch),
    Stage("cut", queue="media", status="cutting", starts_in=frozenset({"cutting"}),
          then=(), finishes_as=frozenset({"ready", "transcribing"}), progress=(0.3, 0.5),
          work=work.cut, advance=work.after_cut),
    Stage("asr", queue="asr", status="transcribing",
          starts_in=frozenset({"cutting", "transcribing"}), then=(),
          finishes_as=frozenset({"ready"}), progress=(0.5, 1.0),
          work=work.transcribe, advance=work.after_transcribe,
          done_for=work.has_current_transcript),
    Stage("render", queue="render", status="rendering", starts_in=frozenset({"rendering"}),
          then=(), finishes_as=frozenset({"rendered"}), progress=(0.0, 1.0),
          work=work.render, advance=work.after_render),
)}

#: Every queue, in the order a worker on all of them takes work: finish clips already in
#: flight (transcription, cuts) before fetching new ones; renders wait for reviewed clips.
WORKER_ORDER: tuple[str, ...] = ("asr", "media", "fetch", "render")
QUEUES: tuple[str, ...] = tuple(dict.fromkeys(s.queue for s in STAGES.values()))
#: With two workers or more, one holds the Whisper model and transcribes (cutting or fetching
#: when nothing waits to be transcribed) and the others cut, fetch and render: Whisper on the
#: second of two cores finishes no sooner than one after the other (FACTS: "The CPU"), each
#: model costs ~250 MB, and a long render never holds up a transcription.
ASR_WORKER: tuple[str, ...] = ("asr", "media", "fetch")
MEDIA_WORKER: tuple[str, ...] = ("media", "fetch", "render")


#: Each queue's twin for work that can wait (`jobqueue.goes_first` is False: the re-cut of a clip
#: a merge widened, which has a version to watch already). A worker takes every queue's own work
#: before any twin's (`with_later`), so in a burst a new moment's fetch is never left behind
#: the transcription of another's widened re-cut (bench/time_to_clip.py: the burst's first new
#: clip 3.5x -> 2.2x the sequential p50).
LATER = "-later"


def queue_for(queue: str, *, first: bool) -> str:
    """Pure: the Redis queue a stage's job goes to."""
    return queue if first else queue + LATER


def with_later(names: Sequence[str]) -> list[str]:
    """Pure: the queues a worker on `names` listens to, in order: those, then their twins."""
    return [*names, *(n + LATER for n in names)]


def worker_queues(index: int, count: int) -> tuple[str, ...]:
    """Pure: the queues, in order of preference, of worker `index` (from 0) of `count`."""
    if count <= 1:
        return WORKER_ORDER
    return ASR_WORKER if index == 0 else MEDIA_WORKER
#: Statuses in which some stage runs or is due.
WORKING_STATUSES: frozenset[str] = frozenset().union(
    *(s.starts_in | {s.status} for s in STAGES.values()))


def stage(name: str) -> Stage:
    return STAGES[name]


def stage_for_status(status: str) -> Stage | None:
    """The stage a clip in `status` is waiting on ('queued' waits on the first stage)."""
    for s in STAGES.values():
        if s.status == status:
            return s
    return next((s for s in STAGES.values() if status in s.starts_in), None)


def due_stages(session: Session, clip: Clip) -> list[Stage]:
    """The stages a clip needs jobs for now (while cutting, the transcription may run too)."""
    return [s for s in STAGES.values() if s.due(session, clip)]
