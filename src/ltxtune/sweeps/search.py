"""The Optuna search of ``hparams_search=...``: asynchronous workers on one shared study, with pruning.

``OptunaSearch`` is a Hydra sweeper (``conf/hydra/sweeper/ltxtune_optuna.yaml``). It runs ``n_jobs`` workers;
each asks the study for a trial, launches that one job through the configured launcher (joblib, the
``gpus`` slots, Slurm through submitit), tells the study how it ended, and asks again at once: no worker waits
for another's trial. The job reports its ``val/loss`` at every validation (``trials.trial_reporter``); a trial
the pruner stops ends ``pruned``.

The study lives in its storage, which several processes and machines may share: every searcher running the
same command works on the same study until it holds ``n_trials`` finished trials (completed, pruned, failed),
so running the command again after a kill finishes the search, and a second machine helps with it. A running
trial's searcher writes a heartbeat into the study; a trial whose heartbeat stopped for ``5 * heartbeat_s``
(its searcher was killed) is marked failed and queued once more with the same parameters (``max_retry``).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from ltxtune.errors import ConfigError
from ltxtune.sweeps.trials import KEY, TRIAL_ENV, make_pruner, make_sampler, open_storage
from ltxtune.training.result import RunResult

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution

log = logging.getLogger("ltxtune")

HEARTBEAT_ATTR = "ltxtune:heartbeat"  # a trial's system attribute: when its searcher last said it is alive
RETRY_OF, RETRIES = "retry_of", "retries"  # user attributes of a trial queued again after its worker died
STALE_HEARTBEATS = 5  # a running trial without a heartbeat for this many intervals lost its worker


# ---------------------------------------------------------------------------------------------- the space


@dataclass(frozen=True)
class Space:
    """The search space (Optuna distributions by key) and the overrides every trial gets as they are."""

    distributions: dict[str, BaseDistribution]
    fixed: list[str]


def search_space(params: Mapping[str, Any] | None, arguments: Sequence[str]) -> Space:
    """``params`` (``key: choice(...)`` / ``interval(...)`` / ``tag(log, interval(...))`` / ``range(...)``) and the
    command line's sweeps become distributions; the command line's plain overrides stay fixed."""
    parser = OverridesParser.create()
    lines = [f"{key}={value}" for key, value in (params or {}).items()]
    distributions: dict[str, BaseDistribution] = {}
    fixed: list[str] = []
    for override in parser.parse_overrides(lines) + parser.parse_overrides(list(arguments)):
        if override.is_sweep_override():
            distributions[override.get_key_element()] = distribution(override)
        else:
            fixed.append(override.input_line)
    return Space(distributions, [f for f in fixed if f.split("=", 1)[0].lstrip("+~") not in distributions])


def distribution(override: Override) -> BaseDistribution:
    """One key's Optuna distribution, from Hydra's sweep grammar."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    value = override.value()
    key = override.get_key_element()
    if isinstance(value, ChoiceSweep):
        return CategoricalDistribution([_plain(v) for v in value.list])
    if isinstance(value, RangeSweep):
        return CategoricalDistribution(list(override.sweep_iterator()))
    if isinstance(value, IntervalSweep):
        log_scale = "log" in value.tags
        if "int" in value.tags or (isinstance(value.start, int) and isinstance(value.end, int)):
            return IntDistribution(int(value.start), int(value.end), log=log_scale)
        return FloatDistribution(float(value.start), float(value.end), log=log_scale)
    raise ConfigError(key, override.input_line, "choice(...), range(...), interval(a, b) or tag(log, interval(a, b))")


def _plain(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)


def _override_value(value: Any) -> str:
    return "null" if value is None else repr(value) if isinstance(value, float) else str(value)


# ---------------------------------------------------------------------------------------------- the study


def budget_left(trials: Sequence[optuna.trial.FrozenTrial], n_trials: int) -> tuple[int, int]:
    """``(trials that may still start, trials running now)``. A trial that failed because its worker died and
    was queued again does not count: its retry does."""
    from optuna.trial import TrialState

    states = [t.state for t in trials]
    retried = sum(1 for t in trials if RETRY_OF in t.user_attrs)
    ended = sum(1 for s in states if s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)) - retried
    running = states.count(TrialState.RUNNING)
    return n_trials - ended - running, running


def fail_stale(study: optuna.Study, stale_after_s: float, max_retry: int, now: float | None = None) -> list[int]:
    """Mark failed every running trial whose searcher stopped beating, and queue each once more (``max_retry``
    times at most) with its parameters. Returns the numbers of the trials it failed."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    now = time.time() if now is None else now
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        beat = trial.system_attrs.get(HEARTBEAT_ATTR)
        if beat is None and trial.datetime_start is not None:
            beat = trial.datetime_start.timestamp()
        if beat is None or now - float(beat) < stale_after_s:
            continue
        try:
            study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        except (UpdateFinishedTrialError, RuntimeError):
            continue  # another searcher got there first, or the trial ended meanwhile
        failed.append(trial.number)
        retries = int(trial.user_attrs.get(RETRIES, 0))
        if retries < max_retry:
            study.enqueue_trial(dict(trial.params), user_attrs={RETRY_OF: trial.number, RETRIES: retries + 1})
            log.warning("trial %d lost its worker: marked failed, queued again", trial.number)
        else:
            log.warning("trial %d lost its worker: marked failed (retried %d times already)", trial.number, retries)
    return failed


class Heartbeat:
    """Writes the time into a running trial every ``interval_s`` seconds until stopped."""

    def __init__(self, storage: Any, trial_id: int, interval_s: float) -> None:
        self.storage, self.trial_id, self.interval_s = storage, trial_id, interval_s
        self.stopped = threading.Event()
        self.beat()
        self.thread = threading.Thread(target=self.run, name=f"heartbeat-{trial_id}", daemon=True)
        self.thread.start()

    def beat(self) -> None:
        try:
            self.storage.set_trial_system_attr(self.trial_id, HEARTBEAT_ATTR, time.time())
        except Exception as error:  # ended meanwhile, or the storage is busy: the next beat tries again
            log.debug("heartbeat of trial id %d: %s", self.trial_id, error)

    def run(self) -> None:
        while not self.stopped.wait(self.interval_s):
            self.beat()

    def stop(self) -> None:
        self.stopped.set()


# ---------------------------------------------------------------------------------------------- the sweeper


class OptunaSearch(Sweeper):
    """Hydra sweeper: asynchronous Optuna workers on a shared, resumable study (see the module's docstring)."""

    def __init__(
        self,
        study_name: str,
        storage: str,
        params: Mapping[str, Any] | None = None,
        direction: str = "minimize",
        n_trials: int = 20,
        n_jobs: int | None = None,
        sampler: str = "tpe",
        sampler_args: Mapping[str, Any] | None = None,
        seed: int | None = None,
        pruner: str = "median",
        pruner_args: Mapping[str, Any] | None = None,
        heartbeat_s: float = 30.0,
        max_retry: int = 1,
    ) -> None:
        self.study_name, self.storage_url, self.params, self.direction = study_name, storage, params, direction
        self.n_trials, self.n_jobs = n_trials, n_jobs
        self.sampler_name, self.sampler_args, self.seed = sampler, sampler_args, seed
        self.pruner_name, self.pruner_args = pruner, pruner_args
        self.heartbeat_s, self.max_retry = float(heartbeat_s), int(max_retry)
        self.lock = threading.Lock()
        self.running: dict[int, optuna.trial.Trial] = {}
        self.stop = threading.Event()

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    # -- settings ------------------------------------------------------------------------------------

    def workers(self) -> int:
        """``n_jobs``, else the launcher's jobs at once (one per GPU slot, or Slurm's array parallelism)."""
        launcher = self.config.hydra.launcher
        if self.n_jobs is not None:
            if not isinstance(self.n_jobs, int) or self.n_jobs < 1:
                raise ConfigError(f"{KEY}.n_jobs", self.n_jobs, "the trials that run at once, an integer >= 1")
            wanted = self.n_jobs
        elif isinstance(launcher.get("n_jobs"), int):
            wanted = launcher.n_jobs if launcher.n_jobs > 0 else os.cpu_count() or 1
        elif isinstance(launcher.get("array_parallelism"), int):
            wanted = launcher.array_parallelism
        else:
            wanted = 1
        if wanted > 1 and not self.parallel_launcher():
            log.warning(
                "%s.n_jobs=%d: this launcher runs one job at a time (use hydra/launcher=joblib, gpus or slurm):"
                " running 1 worker",
                KEY,
                wanted,
            )
            return 1
        return wanted

    def parallel_launcher(self) -> bool:
        return type(self.launcher).__name__ != "BasicLauncher"

    def check(self) -> None:
        if self.direction not in ("minimize", "maximize"):
            raise ConfigError(f"{KEY}.direction", self.direction, "minimize | maximize")
        if not isinstance(self.n_trials, int) or self.n_trials < 1:
            raise ConfigError(f"{KEY}.n_trials", self.n_trials, "the trials of the whole study, an integer >= 1")
        if self.heartbeat_s <= 0:
            raise ConfigError(f"{KEY}.heartbeat_s", self.heartbeat_s, "seconds between heartbeats, > 0")

    # -- the search ----------------------------------------------------------------------------------

    def sweep(self, arguments: list[str]) -> None:
        import optuna

        self.check()
        space = search_space(self.params, arguments)
        if not space.distributions:
            raise ConfigError(f"{KEY}.params", dict(self.params or {}), "at least one key to search")
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        self.storage = open_storage(str(self.storage_url))
        self.study = optuna.create_study(
            study_name=self.study_name,
            storage=self.storage,
            sampler=make_sampler(self.sampler_name, self.sampler_args, self.seed),
            pruner=make_pruner(self.pruner_name, self.pruner_args),
            direction=self.direction,
            load_if_exists=True,
        )
        workers = self.workers()
        log.info(
            "Optuna study %r in %s: %d workers, until it holds %d finished trials (%d now)",
            self.study_name,
            self.storage_url,
            workers,
            self.n_trials,
            len(self.study.get_trials(deepcopy=False)),
        )
        threads = [
            threading.Thread(target=self.work, args=(space, i), name=f"search-worker-{i}", daemon=True)
            for i in range(workers)
        ]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                while thread.is_alive():
                    thread.join(timeout=0.5)
        except KeyboardInterrupt:
            self.stop.set()
            self.give_up_running()
            raise
        self.log_best()

    def work(self, space: Space, worker: int) -> None:
        """One worker: ask, run, tell, until the study holds ``n_trials`` finished trials."""
        broken = 0
        while not self.stop.is_set() and (trial := self.next_trial(space)) is not None:
            heartbeat = Heartbeat(self.storage, trial._trial_id, self.heartbeat_s)
            try:
                self.run_trial(trial, space)
                broken = 0
            except Exception as error:  # the launcher itself failed (a worker process died): the trial is lost
                log.error("trial %d: the launcher failed (%s: %s)", trial.number, type(error).__name__, error)
                self.end(trial, "failed", retry=True)
                broken += 1
                if broken >= 3:
                    log.error("worker %d stops: its launcher failed 3 times in a row", worker)
                    return
            finally:
                heartbeat.stop()

    def next_trial(self, space: Space) -> optuna.trial.Trial | None:
        """The next trial to run (a queued retry first), or ``None`` when the study is done. With the trials
        left all running elsewhere, waits: one of them may lose its worker and come back."""
        stale_after = STALE_HEARTBEATS * self.heartbeat_s
        while not self.stop.is_set():
            with self.lock:
                fail_stale(self.study, stale_after, self.max_retry)
                left, running = budget_left(self.study.get_trials(deepcopy=False), self.n_trials)
                if left > 0:
                    trial = self.study.ask(space.distributions)
                    self.running[trial.number] = trial
                    return trial
                if running == 0:
                    return None
            self.stop.wait(min(self.heartbeat_s, 5.0))
        return None

    def run_trial(self, trial: optuna.trial.Trial, space: Space) -> None:
        overrides = [
            *space.fixed,
            *(f"{key}={_override_value(value)}" for key, value in trial.params.items()),
            f"++hydra.job.env_set.{TRIAL_ENV}={trial._trial_id}",
        ]
        (ret,) = self.launcher.launch([overrides], initial_job_idx=trial.number)
        result = _job_result(ret)
        status = result.status if result is not None else "failed"
        if status == "completed" and math.isfinite(result.objective):
            self.end(trial, "completed", value=result.objective)
        elif status == "pruned":
            self.end(trial, "pruned")
        else:  # failed; interrupted (SIGTERM, a Slurm preemption) gets another go
            self.end(trial, "failed", retry=status == "interrupted")

    def end(self, trial: optuna.trial.Trial, status: str, value: float | None = None, retry: bool = False) -> None:
        from optuna.trial import TrialState

        state = {"completed": TrialState.COMPLETE, "pruned": TrialState.PRUNED}.get(status, TrialState.FAIL)
        with self.lock:
            self.running.pop(trial.number, None)
            try:
                self.study.tell(trial, value if state == TrialState.COMPLETE else None, state=state)
            except Exception as error:  # marked stale meanwhile by another searcher: it has its retry already
                log.warning("trial %d: cannot record its end (%s)", trial.number, error)
                return
            retries = int(trial.user_attrs.get(RETRIES, 0))
            if retry and retries < self.max_retry:
                user_attrs = {RETRY_OF: trial.number, RETRIES: retries + 1}
                self.study.enqueue_trial(dict(trial.params), user_attrs=user_attrs)
        shown = f"{value:.6g}" if value is not None else status
        log.info("trial %d %s: %s", trial.number, status, shown)

    def give_up_running(self) -> None:
        """Ctrl-C: the trials this process runs are failed and queued again, so the next command takes them."""
        for trial in list(self.running.values()):
            self.end(trial, "failed", retry=True)

    def log_best(self) -> None:
        try:
            best = self.study.best_trial
        except ValueError:
            log.info("Optuna study %r: no trial completed", self.study_name)
            return
        log.info(
            "Optuna study %r: best trial %d, objective %.6g, %s", self.study_name, best.number, best.value, best.params
        )


def _job_result(ret: Any) -> RunResult | None:
    """The job's ``result.json``, read from its run directory; ``None`` when it left none."""
    from hydra.core.utils import JobStatus

    try:
        output_dir = Path(str(ret.hydra_cfg.hydra.runtime.output_dir))
    except Exception:
        return None
    result = RunResult.read(output_dir)
    if result is None and ret.status == JobStatus.FAILED:
        log.error("trial job failed: %s", ret._return_value)
    return result
