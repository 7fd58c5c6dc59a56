#!/bin/bash
# Session 20 plan (written in session 19, whose device time went to run 18): issue 15's done-means rerun of a Diffusion2GAN
# row through the method engine, on ONE H200, then the session's other work. Run 6's D2G row never finished (no FD) and the
# evaluators of runs 5-14 are lost, so the rerun replays run 5's finished pre-engine row — `diffusion2gan@timestep=625`,
# seed 0: 12,000 Euler-50 pairs, E-LatentLPIPS + GAN (after 200 steps), 600 steps at batch 256, lr 1e-4 (100 warm-up,
# cosine), FD 30.21 (29.96 / 30.46) = 3.52x its evaluator's teacher (8.59), 184 GPU s — with the two defaults added since
# set back (gan_scale_max=inf, d_beta2=0.999: on the CPU the engine then replays the pre-engine row bit for bit,
# tests/test_core_proof_scale_pipeline.py::test_the_engine_replays_the_diffusion2gan_row_of_the_code_before_it).
# Compare: the loss history against run 5's (benchmarks/results/proof_scale_h200_run5/call3/distill/diffusion2gan__timestep-625/
# history.json; step 1 regression 0.5292) and the FD ratio (run 15's evaluator: ratios move a few per cent between evaluators,
# run 10's student 1.59x vs 1.66x) within the seed spreads:
#   python -m tools.compare_histories benchmarks/results/proof_scale_h200_run5/call3/distill/diffusion2gan__timestep-625/history.json \
#     <the rerun's history.json from records.tgz> --window 100
#
# A. The E-LatentLPIPS trunk (the row's regression needs it; no committed evaluator has one, and the train split cannot ride
#    with the evaluator under 64 MiB): bundle `proof_scale_bundle.sh --train-images` (no --evaluator), move aside what run 17's
#    run.sh says AND .devdata/ps_init; carry [".whl", ".devdata/ps"] (~66 MB); CALL=A (~100 s).
# B. Rebundle `proof_scale_bundle.sh --evaluator benchmarks/results/proof_scale_h200_run15/evaluator --teacher-row
#    benchmarks/results/proof_scale_h200_run18` (the teacher row is skipped: ~130 s saved), carry [".whl", ".devdata/ps"] on the
#    still-warm machine (runs/ps5 keeps the trunk), CALL=B (~350 s: pairs ~40 s, the row ~200 s, scoring).
# Then, with ~1,300 s left: issue 16's next lever (the shipped recipe with regression=latentlpips for the anchor, or alpha=1.2:
# `VARIANTS='sid_lsg_teacher_cfg@init_from=diffusion2gan:lr=3e-5:lr_warmup=50:steps=1500:batch=256:ema_decay=0.99:anchor=0.25:regression=latentlpips'`
# with run 18's bundle + --teacher-row, ~1,100 s), or issue 20's decoder rows (benchmarks/device/issue20.sh CALL=3 + the
# layout probe), by the guide's order.
export W=runs/ps5
case "${CALL:-A}" in
  A) python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 9
     PYTHONPATH=/tmp/site:$PWD python3 -m proof_scale.pipeline --work "$W" --stage latent-lpips --data .devdata/ps/fm \
       --context .devdata/ps/context.safetensors --max-seconds 400 2>&1 | tail -20
     tar czf "$OUT/evaluator.tgz" "$W"/latent_lpips.safetensors "$W"/latent_lpips.json ;;  # commit beside run 15's classifier
  B) PAIRS=12000 SELECT=500 SKIP_PIP=1 MAXS=540 \
     VARIANTS='diffusion2gan@timestep=625:steps=600:batch=256:lr_warmup=100:gan_warmup=200:gan_scale_max=inf:d_beta2=0.999' \
     bash benchmarks/device/proof_scale_run.sh ;;
  C) # issue 16's next lever on the same machine: the shipped recipe with a LatentLPIPS anchor (the trunk from call A);
     # needs run 18's bundle: proof_scale_bundle.sh --evaluator .../run15/evaluator --teacher-row .../run18 --init <run 10's student>,
     # carry [".whl", ".devdata/ps", ".devdata/ps_init"]; MAXS per call as run 18's run.sh (about 1,100 s in all)
     mkdir -p runs/ps && cp -n runs/ps5/latent_lpips.* runs/ps/
     W=runs/ps SKIP_PIP=1 MAXS=${MAXS:-540} KEEP=${KEEP:-} \
     VARIANTS='sid_lsg_teacher_cfg@init_from=diffusion2gan:lr=3e-5:lr_warmup=50:steps=1500:batch=256:ema_decay=0.99:anchor=0.25:regression=latentlpips' \
     bash benchmarks/device/proof_scale_run.sh ;;
  P) # The same row through the code BEFORE the engine (commit 7cb2206), with the same teacher, classifier (run 15's) and
     # E-LatentLPIPS trunk (call A's): the FD comparison issue 15's done-means asks for, on one evaluator. Here first:
     #   git worktree add /tmp/pre 7cb2206; mkdir -p .devdata/pre/{code,work,whl}
     #   (cd /tmp/pre && git archive HEAD onestep training proof_scale tools benchmarks/__init__.py) | tar x -C .devdata/pre/code
     #   cp .whl/{diffusers,importlib_metadata,kornia}* .devdata/pre/whl/; cp -r .devdata/ps/fm .devdata/ps/context.safetensors .devdata/pre/
     #   cp <run 15 evaluator>/classifier.* <call A's trunk>/latent_lpips.* <run 18>/teacher_eval.json .devdata/pre/work/
     # carry [".devdata/pre"] (the tree without the student and text encoder).
     python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .devdata/pre/whl/*.whl || exit 9
     root=$PWD; PW=/tmp/prew; mkdir -p "$PW" && cp .devdata/pre/work/* "$PW"/
     (cd .devdata/pre/code && PYTHONPATH=/tmp/site:$PWD python3 -m proof_scale.pipeline --work "$PW" \
        --stage teacher,pairs,distill-diffusion2gan@timestep=625 --data ../fm --context ../context.safetensors \
        --teacher-import "$root"/default_models/proof_scale/fmnist-teacher.safetensors --sweep-steps 50 --sweep-cfg 1.5 \
        --pairs 12000 --distill-steps 600 --gan-warmup 200 --row-set lr_warmup=100 --max-seconds 520 2>&1 | tail -40)
     tar czf "$OUT/records_pre.tgz" -C "$PW" --exclude='*.safetensors' --exclude='*.ckpt' . ;;
esac
# As run (session 20, one H200, 1,706 s held in all with the issue 20 call between): CALL=A (92 s: the trunk, test acc 0.7864;
# committed as benchmarks/results/proof_scale_h200_run15/evaluator/latent_lpips.* so later bundles carry it with the
# classifier), CALL=B (363 s; engine_seed0/), CALL=P (317 s; pre_engine_seed0/), then the engine row again with training
# seed 1 (391 s; engine_seed1/) — after copying the trunk into .devdata/ps/evaluator/ and the four proof-scale wheels into .whl:
#   W=runs/ps5 PAIRS=12000 SELECT=500 MAXS=420 VARIANTS='diffusion2gan@timestep=625:steps=600:batch=256:lr_warmup=100:gan_warmup=200:gan_scale_max=inf:d_beta2=0.999:seed=1' \
#     bash benchmarks/device/proof_scale_run.sh
# Result (docs/benchmarks.md "session 20 run 19"): engine 27.89 (seed 0) / 29.91 (seed 1), the code before it 28.42 (seed 0) —
# on one evaluator the pre-engine row lies between the engine's two training seeds. CALL=C did not run (no device time left).
# Its plan moved to benchmarks/results/proof_scale_h200_run20/run.sh (the trunk now rides with the evaluator).
