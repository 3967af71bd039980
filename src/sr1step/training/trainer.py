"""The one training loop behind ``sr1step train`` and ``sr1step distill``.

On accelerate: one process or many (``accelerate launch``), mixed precision, gradient
accumulation, one AdamW per phase, EMA of the generator, learning-rate warm-up. Every step is a
pure function of (seed, step): the data stream, the degradation draws and the global torch RNG
are re-seeded from them, so ``--resume`` continues bit for bit. Checkpoints are written to a
temporary folder and renamed; Ctrl-C finishes the current step, saves and exits.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..data.datasets import (
    HRCrops,
    PairedSet,
    StreamSampler,
    resolve_image_list,
)
from ..data.degradations import PairPool
from ..devices import resolve_device
from ..engine import Engine, EngineOptions
from ..files import alive_pid_in, claim_output, lock_path
from .checkpoint import (
    RunLockedError,
    load_process_state,
    process_file,
    remove_stale_temps,
    resume_from,
    save_checkpoint,
    stage_process_state,
    staged_process_files,
)
from .config import (
    RunConfig,
    build_validation_set,
    check_crop_fits,
    flat_config,
    lr_lambda,
    make_degradation,
    save_run_config,
)
from .recipe import Batch, Recipe
from .stop import StopFlag
from .validation import format_scores, score_validation


def mix_seed(*keys: int) -> int:
    """A 62-bit seed from integers (stable across runs and platforms)."""
    return int(
        np.random.SeedSequence([int(k) & 0xFFFFFFFF for k in keys]).generate_state(2, np.uint64)[0] >> 2
    )


@dataclass
class TrainResult:
    export_dir: Path
    steps: int
    history: list[dict] = field(default_factory=list)  # logged training metrics
    validations: list[dict] = field(default_factory=list)  # psnr/ssim per validation
    interrupted: bool = False
    main_process: bool = True


class Trainer:
    def __init__(
        self,
        run: RunConfig,
        recipe_factory: Callable[[RunConfig], Recipe],
        output: Path,
        log: Callable[[str], None] = print,
    ):
        from accelerate import Accelerator
        from accelerate.utils import ProjectConfiguration

        self.run = run
        self.output = Path(output)
        self.log = log
        cfg = run.train
        device = resolve_device(cfg.device)  # the same names and checks as upscale
        if device.type == "cuda" and device.index is not None:
            torch.cuda.set_device(device)  # a single process on cuda:N (accelerate uses the current device)
        self.acc = Accelerator(
            cpu=device.type == "cpu",
            mixed_precision=cfg.mixed_precision,
            log_with="tensorboard",
            project_config=ProjectConfiguration(
                project_dir=str(self.output), logging_dir=str(self.output / "logs")
            ),
        )
        self.device = self.acc.device
        torch.manual_seed(mix_seed(cfg.seed, 0xC0FFEE))  # the same seed gives the same initial weights
        self.recipe = recipe_factory(run).to(self.device)
        check_crop_fits(run, self.recipe.generator())
        self.nets = self.recipe.networks()
        if cfg.gradient_checkpointing:
            for net in self.nets.values():
                if hasattr(net, "enable_gradient_checkpointing"):
                    net.enable_gradient_checkpointing()
        self.optimizers, self.schedulers = {}, {}
        for phase in self.recipe.phases:
            params = [p for p in self.nets[phase.network].parameters() if p.requires_grad]
            if not params:
                raise ValueError(
                    f"phase {phase.name!r}: network {phase.network!r} has no trainable parameters"
                )
            opt = torch.optim.AdamW(
                params, lr=self.phase_lr(phase.name), betas=cfg.betas, weight_decay=cfg.weight_decay
            )
            self.optimizers[phase.name] = opt
            # a phase with repeats steps its scheduler that many times per training step
            schedule = lr_lambda(
                cfg.lr_schedule, cfg.warmup_steps * phase.repeats, cfg.max_steps * phase.repeats
            )
            self.schedulers[phase.name] = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
        names = list(self.nets)
        prepared = self.acc.prepare(*[self.nets[n] for n in names], *self.optimizers.values())
        prepared = prepared if isinstance(prepared, (list, tuple)) else [prepared]
        self.recipe.bind(dict(zip(names, prepared[: len(names)])))
        self.optimizers = dict(zip(self.optimizers, prepared[len(names) :]))
        self.ema = None
        if cfg.ema_decay > 0:
            from diffusers.training_utils import EMAModel

            self.ema = EMAModel(self.ema_params(), decay=cfg.ema_decay)
            self.ema.to(self.device)
        self.degrade = make_degradation(run)
        self.pool = PairPool(
            run.data.pool_batches * cfg.batch_size if run.data.degradation == "realesrgan" else 0
        )
        shared_draws = 1 + sum(p.repeats if p.fresh_batch else p.repeats - 1 for p in self.recipe.phases)
        self.micro_per_step = cfg.grad_accum * shared_draws
        self.step = 0
        self.last_validation: dict = {}

    def phase_lr(self, phase: str) -> float:
        return self.recipe.phase_lrs.get(phase, self.run.train.lr)

    # --- data -----------------------------------------------------------------------------------

    def _loader(self, start_step: int):
        cfg, data = self.run.train, self.run.data
        files = resolve_image_list(data.train, split="train")
        crops = HRCrops(
            files,
            max(data.crop_pad_size, data.gt_size),
            seed=cfg.seed,
            flip=data.flip,
            rotate=data.rotate,
            cache=data.cache_images,
            rescale=data.rescale_gt,
            flat_psnr=data.flat_crop_psnr,
            scale=data.scale,
            log=self.log,
        )
        start = start_step * self.micro_per_step * cfg.batch_size * self.acc.num_processes
        sampler = StreamSampler(start, self.acc.process_index, self.acc.num_processes)
        loader = DataLoader(
            crops, batch_size=cfg.batch_size, sampler=sampler, num_workers=data.num_workers, drop_last=True
        )
        return iter(loader)

    def _next_batch(self, it, step: int, draw: int) -> Batch:
        data = self.run.data
        hr = next(it).to(self.device, non_blocking=True)
        g = torch.Generator().manual_seed(mix_seed(self.run.train.seed, step, self.acc.process_index, draw))
        lr = self.degrade(hr, g)
        size, s = data.gt_size, data.scale
        if hr.shape[-1] > size:  # paired random crop after the degradation (no blur borders)
            lr_size = size // s
            y = int(torch.randint(0, lr.shape[-2] - lr_size + 1, (1,), generator=g))
            x = int(torch.randint(0, lr.shape[-1] - lr_size + 1, (1,), generator=g))
            lr = lr[..., y : y + lr_size, x : x + lr_size]
            hr = hr[..., y * s : y * s + size, x * s : x * s + size]
        hr, lr = self.pool(hr.contiguous(), lr.contiguous(), g)
        return Batch(hr=hr, lr=lr)

    # --- one step ---------------------------------------------------------------------------------

    def _train_step(self, it, step: int) -> dict[str, float]:
        cfg = self.run.train
        torch.manual_seed(mix_seed(cfg.seed, step, self.acc.process_index, 99))
        draw = 0

        def draw_batches():
            nonlocal draw
            out = [self._next_batch(it, step, draw + i) for i in range(cfg.grad_accum)]
            draw += cfg.grad_accum
            return out

        shared = draw_batches()
        states: list[dict] = [{} for _ in shared]
        logs: dict[str, float] = {}
        for net in self.nets.values():
            net.train()
        for phase in self.recipe.phases:
            net = self.nets[phase.network]
            opt = self.optimizers[phase.name]
            for rep in range(phase.repeats):
                fresh = phase.fresh_batch or rep > 0
                batches = draw_batches() if fresh else shared
                batch_states = [{} for _ in batches] if fresh else states
                opt.zero_grad(set_to_none=True)
                for i, (batch, state) in enumerate(zip(batches, batch_states)):
                    last = i == len(batches) - 1
                    with contextlib.ExitStack() as stack:
                        if not last:
                            for wrapped in self.recipe.wrapped.values():
                                stack.enter_context(self.acc.no_sync(wrapped))
                        with self.acc.autocast():
                            loss, parts = self.recipe.loss(phase.name, batch, state)
                        self.acc.backward(loss / len(batches))
                    for k, v in parts.items():
                        logs[f"{phase.name}/{k}"] = (
                            logs.get(f"{phase.name}/{k}", 0.0) + v / len(batches) / phase.repeats
                        )
                if cfg.grad_clip > 0:
                    self.acc.clip_grad_norm_([p for p in net.parameters() if p.requires_grad], cfg.grad_clip)
                opt.step()
                self.schedulers[phase.name].step()
        if self.ema is not None:
            self.ema.step(self.ema_params())
        for phase in self.recipe.phases:
            logs[f"lr/{phase.name}"] = self.schedulers[phase.name].get_last_lr()[0]
        return logs

    # --- validation and export ----------------------------------------------------------------------

    def ema_params(self) -> list[torch.nn.Parameter]:
        """The generator's trainable parameters (LoRA only for LoRA recipes)."""
        return [p for p in self.nets["generator"].parameters() if p.requires_grad]

    @contextlib.contextmanager
    def ema_weights(self):
        params = self.ema_params()
        if self.ema is None:
            yield
            return
        self.ema.store(params)
        self.ema.copy_to(params)
        try:
            yield
        finally:
            self.ema.restore(params)

    @torch.no_grad()
    def validate(self, valset: PairedSet, step: int) -> dict:
        for net in self.nets.values():
            net.eval()
        folder = self.output / "samples" / f"step-{step:07d}"
        with self.ema_weights():
            engine = Engine(self.recipe.generator(), EngineOptions(device=str(self.device), dtype="fp32"))
            scores = score_validation(
                engine, valset, self.run.data.scale, self.run.train.sample_images, folder
            )
        for net in self.nets.values():
            net.train()
        return scores

    def export(self) -> Path:
        folder = self.output / "export"
        with self.ema_weights():
            info = {"train_steps": self.step}
            if self.last_validation:  # the figures `sr1step models push` puts on the model card
                info["validation"] = self.last_validation
            self.recipe.export(folder, self.run.method, info)
        save_run_config(self.run, folder / "train_config.toml")
        return folder

    def _resume(self, spec: str) -> Path:
        wrapped = {n: self.acc.unwrap_model(w) for n, w in self.recipe.wrapped.items()}
        root = self.output / "checkpoints"
        path, self.step = resume_from(
            root, spec, wrapped, self.optimizers, self.schedulers, self.ema, self.log
        )
        return path

    def stage_pool(self) -> None:
        if self.pool.size > 0:
            stage_process_state(self.output / "checkpoints", self.acc.process_index, self.pool.state_dict())

    def checkpoint(self) -> Path:
        root = self.output / "checkpoints"
        return save_checkpoint(
            root,
            self.step,
            {n: self.acc.unwrap_model(w) for n, w in self.recipe.wrapped.items()},
            self.optimizers,
            self.schedulers,
            self.ema,
            keep=self.run.train.keep_checkpoints,
            meta={"method": self.run.method},
            extra_files=staged_process_files(root),
        )

    # --- the loop -----------------------------------------------------------------------------------

    def fit(
        self, resume: str | None = None, on_log: Callable[[int, dict], None] | None = None
    ) -> TrainResult:
        """Train to ``max_steps`` (from a checkpoint with ``resume``) and export. The main process
        holds a lock on the run folder meanwhile: two trainers never write one run."""
        lock = None
        if self.acc.is_main_process:
            self.output.mkdir(parents=True, exist_ok=True)
            lock = claim_output(self.output / "run")
            if lock is None:
                pid = alive_pid_in(lock_path(self.output / "run"))
                raise RunLockedError(
                    f"{self.output} is in use by another sr1step run (pid {pid}); stop it first"
                )
            remove_stale_temps(self.output / "checkpoints")
        try:
            return self._fit(resume, on_log)
        finally:
            if lock is not None:
                lock.unlink(missing_ok=True)

    def _fit(self, resume: str | None, on_log: Callable[[int, dict], None] | None) -> TrainResult:
        cfg = self.run.train
        main = self.acc.is_main_process
        if main and not resume:
            save_run_config(self.run, self.output / "config.toml")
        if resume:
            path = self._resume(resume)
            if main:  # only once the checkpoint fits this config: a refused resume changes nothing
                save_run_config(self.run, self.output / "config.toml")
            pool_state = load_process_state(path, self.acc.process_index)
            if pool_state is not None and len(pool_state.get("hr", ())) in (0, self.pool.size):
                self.pool.load_state_dict(pool_state, self.device)
            elif self.pool.size > 0:
                name = process_file(self.acc.process_index)
                self.log(
                    f"no matching {name} in the checkpoint (other process count or pool size?): "
                    "the pair pool starts empty"
                )
            self.log(f"resumed from {path} at step {self.step}")
        self.acc.init_trackers("sr1step", config=flat_config(self.run.to_dict()))
        valset = build_validation_set(self.run, self.degrade) if main else None
        if valset is not None:
            for name, reason in valset.problems:
                self.log(f"validation: skipping {name}: {reason}")
        result = TrainResult(self.output / "export", self.step, main_process=main)
        it = self._loader(self.step)
        t0, steps_timed = time.perf_counter(), 0
        with StopFlag() as stop:
            while self.step < cfg.max_steps:
                logs = self._train_step(it, self.step)
                self.step += 1
                steps_timed += 1
                if cfg.log_every and (self.step % cfg.log_every == 0 or self.step == cfg.max_steps):
                    logs["it_per_s"] = steps_timed / max(time.perf_counter() - t0, 1e-9)
                    t0, steps_timed = time.perf_counter(), 0
                    self.acc.log(logs, step=self.step)
                    result.history.append({"step": self.step, **logs})
                    if on_log is not None and main:
                        on_log(self.step, logs)
                final = self.step == cfg.max_steps
                if (
                    main
                    and valset is not None
                    and ((cfg.validate_every and self.step % cfg.validate_every == 0) or final)
                ):
                    scores = self.validate(valset, self.step)
                    self.acc.log({f"val/{k}": v for k, v in scores.items()}, step=self.step)
                    result.validations.append({"step": self.step, **scores})
                    self.last_validation = {"step": self.step, **{k: round(v, 4) for k, v in scores.items()}}
                    self.log(format_scores(self.step, scores))
                if (
                    (cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0)
                    or final
                    or stop.requested
                ):
                    self.stage_pool()
                    self.acc.wait_for_everyone()
                    if main:
                        self.checkpoint()
                if stop.requested:
                    result.interrupted = True
                    self.log(
                        f"interrupted at step {self.step}; checkpoint saved. Continue with --resume latest"
                    )
                    break
        self.acc.wait_for_everyone()
        if main and not result.interrupted:
            result.export_dir = self.export()
        self.acc.end_training()
        result.steps = self.step
        return result
