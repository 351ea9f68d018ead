"""The surge, CI-sized: 150 flags in ~10 s from 30 long-lived clients (threads calling the
services as the dashboard does, a share through `clipper flag --json` subprocesses) over 20
moments on 3 sources, many overlapping — while a reviewer claims and approves the clips that
are ready and a render worker renders them. On both databases. Correctness only (bench/faults.py
measures the full-size surge's accept times): every flag stored and attached, exactly one clip
per moment, every flagger credited, and the reviewer never hit an unexpected error."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest
from polling import poll

from clipper.context import Context
from clipper.permissions import Actor
from clipper.services.flags import file_flag
from testmedia.faults import (
    ROOT,
    Moment,
    check_invariants,
    problems,
    run_surge,
    spread_moments,
    statuses,
    surge_findings,
)

pytestmark = [pytest.mark.faults, pytest.mark.services, pytest.mark.slow]

FLAGS, CLIENTS, SECONDS = 150, 30, 10.0
#: Clips on the served broadcast made ready before the surge, for the reviewer to approve;
#: the surge's flags of them fall inside them (merged without a re-cut, so they stay ready).
REVIEWED = ((2.0, 10.0), (14.0, 22.0))


def cli_env(ctx: Context) -> dict[str, str]:
    s = ctx.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLIPPER_")}
    env.update(CLIPPER_HOME=str(s.home), DATABASE_URL=s.database_url, REDIS_URL=s.redis_url,
               CLIPPER_URL_ALLOWLIST="127.0.0.1", HF_HUB_OFFLINE="1")
    return env


@pytest.fixture
def render_worker(ctx: Context) -> Iterator[subprocess.Popen]:
    """A worker on the render queue alone (fetches never run: the surge's other sources are
    never fetched), killed with its group after the test."""
    proc = subprocess.Popen([sys.executable, "-m", "clipper.cli", "worker", "--queues", "render"],
                            cwd=ROOT, env=cli_env(ctx), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    yield proc
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def test_a_surge_of_flags_is_merged_exactly_while_a_reviewer_approves(
        ctx, broadcast_site, run_jobs, render_worker):
    base, _ = broadcast_site
    served = f"{base}/show.mp4"
    seed = Actor("seed", "volunteer")
    reviewed = [file_flag(ctx, seed, served, s, e).clip_id for s, e in REVIEWED]
    run_jobs(ctx, ("asr", "media", "fetch"))  # the clips to review, made the real way
    assert {statuses(ctx)[c] for c in reviewed} == {"ready"}
    never_fetched = [f"http://127.0.0.1:9/surge-{k}.mp4" for k in (1, 2)]
    moments = [Moment(served, s, e - s - 2.0, 2.0) for s, e in REVIEWED]
    moments += spread_moments(never_fetched, 18)

    result = run_surge(ctx, cli_env(ctx), moments, flags=FLAGS, clients=CLIENTS,
                       seconds=SECONDS, cli_share=0.1)

    findings = surge_findings(ctx, result, moments)
    assert not problems(findings, ignore=("extra_flags",)), findings
    assert len(result.accepted) == FLAGS
    assert {a.via for a in result.accepted} == {"service", "cli"}
    assert findings["extra_flags"] == [1, 2]  # only the two seed flags
    clip_of = {a.moment: a.clip_id for a in result.accepted}
    assert [clip_of[0], clip_of[1]] == reviewed  # their flags joined the clips under review
    assert len(set(clip_of.values())) == len(moments)  # one clip per moment, none shared
    # The reviewer approved both, each once, and the render worker rendered and exported them.
    assert sorted(result.approved) == reviewed, result
    poll(lambda: {statuses(ctx)[c] for c in reviewed} == {"exported"}, 120,
         "the approved clips rendered and exported")
    inv = check_invariants(ctx, done=None)
    assert not problems(inv), inv
