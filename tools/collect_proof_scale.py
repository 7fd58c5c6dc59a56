"""The proof-scale scoreboard: the best scored row of every method, gathered from the committed run records into
benchmarks/results/proof_scale.json, with each row's ratio to the teacher, its issue's target and where it came from.

  python -m tools.collect_proof_scale [--check]

Device calls are budget-bound, so the rows come from several runs (benchmarks/results/proof_scale_h200_run*/...). An
FD depends on the classifier whose features it compares, so every row names its evaluator and its ratio is taken
against the teacher scored by that same evaluator: "run6" is the classifier trained in run 6 (session 8), which runs 6–14
imported; "run15" the one run 15 trained again (the earlier one went with a device machine). Same seeds, sample count
and metrics for both. A row's record is a stage's result.json (its "row"), a row of a result's "by_steps", a row of
teacher_steps.json, or a benchmarks.score_generator JSON (weights that came back from the GPU, scored outside a
pipeline). Adding a run's row = one line in SOURCES, then run this again; --check (run by the tests) fails when the
committed file is not what SOURCES gives.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from proof_scale.common import write_json

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join("benchmarks", "results", "proof_scale.json")
R = "benchmarks/results/proof_scale_h200_run"
KEEP = ("fd", "fd_seeds", "seeds", "fd_spread", "precision", "recall", "class_acc", "nfe", "training_samples", "train_seconds",
        "selected_step", "selected_ema", "steps")  # selected_ema: rows that scored several averages (plan ema_select)
# evaluator → the teacher row (Euler 50, CFG 1.5) it scored: every ratio of that evaluator's rows is taken against it
TEACHERS = {
    "run6": "teacher",
    "run15": "teacher_run15",
}
# row → (record file, key path inside it, evaluator, what it is)
SOURCES = {
    "teacher": (f"{R}6/teacher_eval.json", ("row",), "run6", "the shipped teacher: Euler 50 steps, CFG 1.5"),
    "teacher_run15": (f"{R}18/teacher_eval.json", ("row",), "run15", "the shipped teacher: Euler 50 steps, CFG 1.5 (run 15's evaluator; "
                      "scored on three seeds in run 18 — runs 15–17 scored it on seed 1,000,000 only: 8.517 there, 8.515 in run 18)"),
    "diffusion2gan_then_sid_lsg_split_anchored_lowlr": (
        f"{R}28/score_a_lr5e-6_step250_cpu.json", (), "run15",
        "shipped until session 33: run 17's student (below) continued by the same SiD-LSG stage (split + anchor 0.25) at a constant "
        "lr 5e-6 for G and ψ, 250 steps at batch 256 (run 28; CPU-scored in float32 on the teacher's three seeds — the "
        "teacher in float32 on the GPU: 8.413, run 28's diagnosis)"),
    "diffusion2gan_then_sid_lsg_split_anchored": (f"{R}18/score_shipped_student_3seeds_cpu.json", (), "run15",
                                                  "shipped until session 27: SiD-LSG with the LSG split (κ1 = κ2 = 1, κ4 = 1.5) + the "
                                                  "recall anchor (latent MSE on the teacher pairs, 0.25 of SiD's gradient norm), "
                                                  "1,250 steps at batch 256 from run 10's GAN-stage student (run 17; CPU-scored on the teacher's three seeds)"),
    "diffusion2gan_then_sid_lsg_split_anchored_kappa4_125": (
        f"{R}18/distill/sid_split_anchor_kappa4_125/result.json", ("row",), "run15",
        "the shipped recipe with the guidance the student learns lowered to κ4 = 1.25 (run 18; GPU-scored in bf16 — the shipped "
        "student scored 8.723 that way): worse at every selection point"),
    "diffusion2gan_then_sid_lsg_anchored": (f"{R}16/score_sid_anchor_step1500_cpu.json", (), "run15",
                                            "SiD-LSG (κ 1.5, lr 3e-5) + the recall anchor 0.25, 1,500 steps at batch 256 from "
                                            "run 10's GAN-stage student (shipped in session 16; CPU-scored)"),
    "diffusion2gan_then_sid_lsg_split": (f"{R}16/score_sid_split_step2000_cpu.json", (), "run15",
                                         "the LSG ablation (κ1 = κ2 = 1, κ4 = 1.5), 2,000 steps at batch 256 from the same "
                                         "student (CPU-scored)"),
    "diffusion2gan_then_sid_lsg": (f"{R}15/score_sid_step500_cpu.json", (), "run15",
                                   "SiD-LSG (κ 1.5, lr 3e-5) 500 steps at batch 256 from run 10's GAN-stage student "
                                   "(shipped in session 15; CPU-scored)"),
    "diffusion2gan": (f"{R}15/distill/gan_continued/result.json", ("row",), "run15",
                      "run 10's GAN stage (the student shipped before) + 2,500 GAN steps at a constant lr 3e-5 (5,500 in all)"),
    "diffusion2gan_gan_weight2_mbstd": (
        f"{R}26/distill/32c4b0bbab17/result.json", ("row",), "run15",
        "run 10's student + 750 GAN steps with G's GAN share doubled (gan_weight 2) and D's minibatch-std channel (run 26's "
        "MB2; selected at step 500): behind the row above"),
    "diffusion2gan_real_images_d_continued_hold": (
        f"{R}34/score_g020034_gpu_3seeds.json", (), "run15",
        "the best Diffusion2GAN row, the shipped student since session 33 (CPU float32 on the same seeds: 8.43): the row below (run 33's 9.58 student) continued with G held still while a fresh D "
        "leads 100 steps (hold_g), the GAN ramped in over 50, the adaptive weight capped at 1 (run 34's ROW 4; deadline-"
        "stopped at 937, selected at 600 on validation noise; 307,200 samples in this stage, 1,100,800 in the three stages with D on real images; "
        "GPU-scored in bf16 on the teacher's three seeds — the pipeline's own scoring on two: 8.51, 8.46 / 8.57)"),
    "diffusion2gan_real_images_d_continued_lead200": (
        f"{R}34/distill/5fb5c3b1fae0/result.json", ("row",), "run15",
        "the same start continued with a 200-step D lead during which G trained on its regression alone (run 34's ROW 1; "
        "selected at 800 of 972): the regression-only steps took it from val 9.8 to 14.2 and it never came back below 10"),
    "diffusion2gan_real_images_d_gan_weight1_continued": (
        f"{R}33/score_gd5c924_gpu.json", (), "run15",
        "run 10's student + 750 GAN steps with D on real images at gan_weight 1 (run 33's DG1, "
        "10.62) continued by 800 more with a fresh D (run 33's second call, stopped by its deadline at 916, selected at "
        "800 on validation noise; 793,600 samples in the GAN stages; GPU-scored in bf16 like a pipeline row — seed "
        "1,000,002: 9.07, against the teacher's 8.18)"),
    "diffusion2gan_real_images_d_gan_weight1": (
        f"{R}33/distill/cc8af971d69e/result.json", ("row",), "run15",
        "run 10's student + 750 GAN steps with D on real images and G's GAN share at gan_weight 1 (run 33's DG1; selected "
        "at its last step, still falling): 2.0 below the same row at 0.5"),
    "diffusion2gan_real_images_d": (
        f"{R}32/distill/81022bee8b9e/result.json", ("row",), "run15",
        "run 10's student + 750 GAN steps with D calling real training images real (8,000, each of its fake's class; "
        "run 32, run 25's MB recipe with d_real=images, z-conditioning off; selected at step 500): 0.68 below run 25's MB"),
    "diffusion2gan_real_images_d_lr_d_ratio2": (
        f"{R}32/distill/e65ccd91e3ce/result.json", ("row",), "run15",
        "the row above with D's lr 2× G's instead of 5× (run 32, 600 steps, selected at the last): slower, still falling at its end"),
    "diffusion2gan_run10": (f"{R}10/score_gan_standard_step3000_cpu.json", (), "run6",
                            "run 10's GAN stage, 3,000 steps from the LatentLPIPS student (shipped until session 15; CPU-scored)"),
    "diffusion2gan_run10_rescored": (f"{R}15/score_run10_student_cpu.json", (), "run15",
                                     "the same run-10 student scored by run 15's evaluator (the start of run 15's rows; CPU-scored)"),
    "regression_latentlpips": (f"{R}14/distill/start_student/result.json", ("row",), "run6",
                               "LatentLPIPS regression, 2,500 steps at batch 1,024 on 80,000 pairs (the GAN stages' start)"),
    "regression_latentlpips_160k": (f"{R}14/distill/control_regression/result.json", ("row",), "run6",
                                    "the start student + 1,000 LatentLPIPS steps on 160,000 pairs (run 14's control)"),
    "regression_mse": (f"{R}6/distill/regression_mse/result.json", ("row",), "run6",
                       "MSE regression, 2,500 steps at batch 1,024 on 80,000 pairs (before the method engine)"),
    "regression_mse_rerun": (f"{R}15/distill/regression_mse_rerun/result.json", ("row",), "run15",
                             "the same plan through the method engine (issue 15's rerun)"),
    "regression_elatentlpips": (f"{R}6/distill/regression_elatentlpips/result.json", ("row",), "run6",
                                "E-LatentLPIPS regression, 2,500 steps at batch 1,024 on 80,000 pairs (the ablation's third row: "
                                "behind MSE and LatentLPIPS at this budget)"),
    "regression_mse_continued": (f"{R}36/distill/mse/result.json", ("row",), "run15",
                                 "the ablation's longer pair (run 36): the shipped-in-session-8 LatentLPIPS student + 1,000 MSE "
                                 "steps at batch 512 (lr 3e-5 constant) on 40,000 pairs, beside the row below on the same GPU"),
    "regression_latentlpips_continued": (f"{R}36/distill/latentlpips/result.json", ("row",), "run15",
                                         "the same start + 1,000 LatentLPIPS steps, the same settings and pairs (run 36): "
                                         "0.81 below MSE, beyond both rows' seed spread (0.25, 0.23)"),
    "regression_elatentlpips_continued": (f"{R}36/distill/elatentlpips/result.json", ("row",), "run15",
                                          "the same start + 1,000 E-LatentLPIPS steps, the same settings on 80,000 pairs "
                                          "(run 36's second call): behind LatentLPIPS, level with MSE"),
    "sid_lsg": (f"{R}13/distill/sid_lsg_lr1e-4/result.json", ("row",), "run6",
                "SiD-LSG, prompts only, κ = 1.5, lr 1e-4, 750 steps at batch 256"),
    "sid_lsg_teacher_cfg": (f"{R}29/score_b_step750_cpu.json", (), "run15",
                            "SiD-LSG, prompts only, the LSG ablation (κ1 = κ2 = 1, κ4 = 1.5), lr 1e-4 constant, 750 steps at "
                            "batch 512 = 384 k samples from the teacher (run 29, stopped by the budget at 955; CPU-scored in "
                            "float32 on the teacher's three seeds)"),
    "teacher_4": (f"{R}12/teacher_steps.json", ("rows", "teacher_4"), "run6", "the teacher at 4 Euler steps (reflow's baseline)"),
    "reflow_2rf_4_run12": (f"{R}12/distill/reflow_2rf/result.json", ("row", "by_steps", "4"), "run6",
                           "2-rectified flow at 4 Euler steps (reflow from the teacher, run 12: 1,500 steps at batch 1,024 on "
                           "40,000 pairs, EMA 0.999)"),
    **{f"teacher_{k}_run15": (f"{R}37/teacher_steps.json", ("rows", f"teacher_{k}"), "run15",
                              f"the teacher at {k} Euler step{'s' if k > 1 else ''}, CFG 1.5 (reflow's baseline; run 37)") for k in (1, 2, 4)},
    **{f"reflow_2rf_{k}": (f"{R}37/distill/reflow_2rf/result.json", ("row", "by_steps", str(k)), "run15",
                           f"2-rectified flow at {k} Euler step{'s' if k > 1 else ''} (reflow from the teacher, run 37: 2,400 steps "
                           "at batch 1,024 on 80,000 pairs, EMA 0.995, compiled blocks)") for k in (1, 2, 4)},
    "instaflow": (f"{R}37/distill/instaflow/result.json", ("row",), "run15",
                  "InstaFlow one step from run 37's 2-RF on 80,000 of its own 25-step Euler pairs, E-LatentLPIPS, batch 1,024: "
                  "stopped by the session's device budget at step 292 of 1,500 (selected step 250)"),
    **{f"reflow_2rf_{k}_run40": (f"{R}40/distill/reflow_2rf/result.json", ("row", "by_steps", str(k)), "run15",
                                 f"2-rectified flow at {k} Euler step{'s' if k > 1 else ''}, run 37's recipe made again (run 40; "
                                 "its weights kept in the repository, run40/kept/)") for k in (1, 2, 4)},
    "instaflow_run40": (f"{R}40/distill/instaflow/result.json", ("row",), "run15",
                        "InstaFlow one step from run 40's 2-RF on 80,000 of its own 25-step Euler pairs, E-LatentLPIPS, batch "
                        "1,024, EMA 0.995, 1,200 steps (val FD still falling at the end; weights kept in run40/kept/)"),
    "instaflow_gan_run41": (f"{R}41/distill/instaflow_gan/result.json", ("row",), "run15",
                            "InstaFlow one step with its optional GAN term (method instaflow-gan), from run 40's InstaFlow: "
                            "E-LatentLPIPS regression on 80,000 of the 2-RF's pairs (their own FD 10.35) + run 34's D recipe "
                            "(real training images, heads at t <= 100), batch 512, lr 3e-5, stopped by the call at step 1,490, "
                            "selected step 600 (weights kept in run41/kept/)"),
    "instaflow_gan_fixed01_run43": (f"{R}43/distill/instaflow_gan_fixed01/result.json", ("row",), "run15",
                                    "InstaFlow one step with its GAN term at a FIXED weight 0.1 (run 41's recipe otherwise), from "
                                    "run 41's selected step 600: val FD fell to 10.74 at step 1,000, then D saturated at ~1,050 "
                                    "and G collapsed (val 64.6 at 1,200); selected step 1,000 (weights kept in run43/kept/)"),
    "instaflow_gan_adaptive4_run43": (f"{R}43/distill/instaflow_gan_adaptive4/result.json", ("row",), "run15",
                                      "as run 41's InstaFlow+GAN but the adaptive weight 4x stronger (gan_weight 4, cap 4), "
                                      "from run 41's step 600: G fell apart first (val 353 at step 200), recovered to 12.83 at "
                                      "1,000; D then at chance; selected step 1,000"),
    "sid_lsg_teacher_cfg_run42a": (f"{R}42/distill/a_constant_lr1e-4/result.json", ("row",), "run15",
                                   "run 29's data-free LSG row at batch 256, lr 1e-4 CONSTANT, compiled blocks, beside the "
                                   "fake_steps=2 row on one GPU: val FD 32.69 at 500, 31.32 at 1,000 (a plateau; run 13's "
                                   "decaying lr reached 26.59 at 750); stopped by the session at step 1,124; scored at step "
                                   "1,000, its best selection point (GPU bf16, 2 seeds); its G and fake score carried on in run42/state_a/"),
    "sid_lsg_teacher_cfg_fake_steps2_run42a": (f"{R}42/distill/a_fake_steps2/result.json", ("row",), "run15",
                                               "the same with fake_steps=2 (two fake-score steps per G step, DMD2's "
                                               "two-time-scale rule): val FD 38.77 at 500, a loss spike at ~750 (fake "
                                               "score 160, SiD gap 0.43); stopped at step 808, scored at its step 500"),
    "sid_lsg_teacher_cfg_lr1e-5_run42b": (f"{R}42/distill/b_lr1e-5/result.json", ("row",), "run15",
                                          "run 42 part b: the part-a row carried on from run42/state_a/ (1,124 G steps) at "
                                          "lr 1e-5 constant, EMA 0.996, the CUDA-graph step (cuda_graph=true), beside the "
                                          "lr 3e-5 row: val FD 27.00 at 500, 25.12 at 1,000; stopped at step 1,164; scored at "
                                          "1,000 (2,124 G steps in all); its G and fake score carried on in run42/state_b/"),
    "sid_lsg_teacher_cfg_lr3e-5_run42b": (f"{R}42/distill/b_lr3e-5/result.json", ("row",), "run15",
                                          "the same at lr 3e-5: val FD 28.15 at 500, 26.09 at 1,000; stopped at step 1,163; "
                                          "scored at 1,000"),
    "sid_lsg_teacher_cfg_b64_run42c": (f"{R}42/distill/c_b64/result.json", ("row",), "run15",
                                       "run 42 part c (session 44, one device call): part b's lr-1e-5 row carried on from "
                                       "run42/state_b/ at BATCH 64, lr 1e-5, EMA 0.999 + averages 0.996/0.9995/0.9998 without "
                                       "the ramp, CUDA-graph step, beside the batch-256 row: val FD 24.64 at 500, 23.92 at "
                                       "1,000 (EMA 0.996); stopped at step 1,416; scored at 1,000 (64 k samples after part "
                                       "b); its G and fake score carried on in run42/state_c/"),
    "sid_lsg_teacher_cfg_b256_run42c": (f"{R}42/distill/c_b256/result.json", ("row",), "run15",
                                        "the same at batch 256 (EMA 0.996 + 0.99/0.999/0.9995): val FD 24.51 at 500 (EMA "
                                        "0.99); stopped at step 651; scored at 500 (128 k samples after part b)"),
    "sid_lsg_teacher_cfg_b64_run42d": (f"{R}42/distill/d_b64/result.json", ("row",), "run15",
                                       "run 42 part d (session 45, two device calls): part c's batch-64 row carried on from "
                                       "run42/state_c/ ALONE on the GPU (118 ms per CUDA-graph step), lr 1e-5, EMA 0.996 + "
                                       "0.99/0.999 without the ramp: val FD 23.71 at 500, 21.59 at 3,500, 19.57 at 6,500 "
                                       "(EMA 0.996); stopped at step 7,322; scored at 6,500 (416 k samples after part c); its "
                                       "G and fake score carried on in run42/state_d/"),
    "sid_lsg_teacher_cfg_b64_run42e": (f"{R}42/distill/e_b64/result.json", ("row",), "run15",
                                       "run 42 part e (session 47, two device calls): part d's row carried on from "
                                       "run42/state_d/ unchanged (CUDA-graph step; the compiled one failed its capture): "
                                       "val FD 19.87 at 500, 21.06 at 2,500, 19.17 at 5,500 (EMA 0.999); stopped at step "
                                       "5,990; scored at 5,500 (352 k samples after part d); its G and fake score carried "
                                       "on in run42/state_e/"),
    "sid_lsg_teacher_cfg_b64_lr3e-6_run42f": (f"{R}42/distill/f_lr3e-6/result.json", ("row",), "run15",
                                              "run 42 part f (session 48, two H100 calls, beside the kappa4 1.25 row): "
                                              "part e's row from run42/state_e/ at lr 3e-6 (was 1e-5): val FD 18.73 at "
                                              "500 (EMA 0.996), 18.92 at 1,000, 19.40 at 1,500 (EMA 0.999); stopped at "
                                              "step 1,911; scored at 500 (32 k samples after part e); its G and fake "
                                              "score carried on in run42/state_f/"),
    "sid_lsg_teacher_cfg_b64_kappa4_1.25_run42f": (f"{R}42/distill/f_kappa4_1.25/result.json", ("row",), "run15",
                                                   "run 42 part f (session 48, two H100 calls): part e's row from "
                                                   "run42/state_e/ at lr 1e-5 with the teacher's guidance kappa4 1.25 "
                                                   "(was 1.5): val FD 18.95 at 500 and 1,000, 19.32 at 1,500 (EMA "
                                                   "0.999); stopped at step 1,927; scored at 500"),
    "sid_lsg_teacher_cfg_b64_lr3e-6_run42g": (f"{R}42/distill/g_const3e-6/result.json", ("row",), "run15",
                                              "run 42 part g (session 49, three H100 calls, beside the cosine row): "
                                              "part f's row from run42/state_f/ at a constant lr 3e-6: val FD 18.39-"
                                              "19.89 at every point but 18.03 at 3,000 (EMA 0.99); stopped at step "
                                              "5,055; scored at 3,000 (192 k samples after part f); its G and fake "
                                              "score carried on in run42/state_g/"),
    "sid_lsg_teacher_cfg_b64_cosine_run42g": (f"{R}42/distill/g_cosine/result.json", ("row",), "run15",
                                              "run 42 part g (session 49, three H100 calls): part f's row from "
                                              "run42/state_f/ at lr 3e-6 with a cosine decay to 0 over 4,000 steps: "
                                              "val FD 19.14-19.35 at every point with EMA 0.999 (18.96 at 1,000, EMA "
                                              "0.99); ended at step 4,000; scored at 1,000"),
    "sid_lsg_teacher_cfg_b256_lr3e-6_run42h": (f"{R}42/distill/h_b256/result.json", ("row",), "run15",
                                               "run 42 part h (session 50, three H100 calls, beside the fake_steps "
                                               "row): part g's row from run42/state_g/ at lr 3e-6 and batch 256 (4x "
                                               "the fake score's samples per step): val FD 18.88-19.04 at 500 and "
                                               "1,000, 18.15-18.68 at 1,500; stopped at step 1,683; scored at 1,500 "
                                               "(EMA 0.99, 384 k samples after part g); carried on in run42/state_h/"),
    "sid_lsg_teacher_cfg_b64_fake5_run42h": (f"{R}42/distill/h_b64_fake5/result.json", ("row",), "run15",
                                             "run 42 part h (session 50, three H100 calls): part g's row from "
                                             "run42/state_g/ at lr 3e-6, batch 64, 5 fake-score steps per G step "
                                             "(DMD2's two-time-scale rule): val FD 18.96-19.19 at 500 and 1,000, "
                                             "18.52-18.71 at 1,500; stopped at step 1,767; scored at 1,500"),
    "sid_lsg_teacher_cfg_live_anchor1_run42j": (f"{R}42/distill/j_w1/result.json", ("row",), "run15",
                                                "run 42 part j (session 53, two H100 calls, beside W 2): part h's "
                                                "row from run42/state_h/ at lr 1e-5, batch 64, with the live recall "
                                                "anchor W 1 (phi's own CFG-1.5 Euler-25 samples of 8 prompts a step; "
                                                "still prompts only): val FD 18.64-18.83 (EMA 0.999), val recall "
                                                "0.50-0.52; stopped at step 1,770; scored at 1,500"),
    "sid_lsg_teacher_cfg_live_anchor2_run42j": (f"{R}42/distill/j_w2/result.json", ("row",), "run15",
                                                "run 42 part j (session 53): as W 1 with the live anchor at W 2: "
                                                "val FD 19.30-20.18 (EMA 0.999), 22.7-26.4 with the faster "
                                                "averages; stopped at step 1,773; scored at 500"),
    "sid_lsg_teacher_cfg_live_anchor1_items32_run42k": (f"{R}42/distill/k_a32/result.json", ("row",), "run15",
                                                        "run 42 part k (session 54, two H100 calls, one row): part "
                                                        "j's W 1 row from run42/state_j/ with 32 anchored prompts a "
                                                        "step (of 64): val FD 19.49 -> 19.27 (EMA 0.999), val recall "
                                                        "0.50 -> 0.53 over 2,500 steps; stopped at step 2,768; "
                                                        "scored at 2,500 (EMA 0.99); carried on in run42/state_k/"),
    "sid_lsg_teacher_cfg_live_anchor1_items32_run42l": (f"{R}42/distill/l_a32/result.json", ("row",), "run15",
                                                        "run 42 part l (session 55, two H100 calls): part k's row "
                                                        "carried on unchanged from run42/state_k/: val FD 18.44 -> "
                                                        "17.17 (EMA 0.999), val recall 0.537 -> 0.559 over 2,500 "
                                                        "steps; stopped at step 2,669; scored at 2,500 (EMA 0.99); "
                                                        "carried on in run42/state_l/"),
    "sid_lsg_teacher_cfg_live_anchor1_dpmpp8_run42m": (f"{R}42/distill/m_dpmpp8/result.json", ("row",), "run15",
                                                       "run 42 part m (session 56, two H100 calls, eager beside the "
                                                       "live-GAN row): part l's row from run42/state_l/ with the "
                                                       "anchor's sampler DPM-Solver++(2M), 8 log-sigma steps: val FD "
                                                       "16.00 -> 15.89 (EMA 0.99), val recall 0.574 -> 0.579 over "
                                                       "1,000 steps; stopped at 1,005; scored at 1,000 (EMA 0.99); "
                                                       "carried on in run42/state_m/"),
    "sid_lsg_teacher_cfg_live_anchor1_dpmpp8_gan03_run42m": (f"{R}42/distill/m_gan03/result.json", ("row",), "run15",
                                                             "run 42 part m's live-GAN row (session 56): the same from "
                                                             "run42/state_l/ plus the live GAN at 0.3 of SiD's gradient "
                                                             "norm from step 300 (D lr 1e-4, fresh): stopped at 885, "
                                                             "scored at 500 (EMA 0.999); D's rank accuracy 0.82 before "
                                                             "G heard it, 0.50 after"),
    "sid_lsg_teacher_cfg_live_anchor1_dpmpp8_run42n": (f"{R}42/distill/n_w1/result.json", ("row",), "run15",
                                                       "run 42 part n (session 57, two H100 calls, graph step beside "
                                                       "the W 2 row): part m's row carried on from run42/state_m/: "
                                                       "val FD 15.42 -> 15.02 (EMA 0.99), val recall 0.575 -> 0.585 "
                                                       "over 1,500 steps; stopped at 2,001; scored at 1,500 (EMA "
                                                       "0.99); carried on in run42/state_n/"),
    "sid_lsg_teacher_cfg_live_anchor2_dpmpp8_run42n": (f"{R}42/distill/n_w2/result.json", ("row",), "run15",
                                                       "run 42 part n's W 2 row (session 57): the same from "
                                                       "run42/state_m/ with the live anchor at twice the weight: val "
                                                       "FD 16.24 (EMA 0.999) at 500, 16.51 at 2,000; stopped at "
                                                       "2,001; scored at 500 (EMA 0.999)"),
    "sid_lsg_teacher_cfg_live_anchor05_dpmpp8_run42o": (f"{R}42/distill/o_w05/result.json", ("row",), "run15",
                                                        "run 42 part o (session 58, two H100 calls, graph step beside "
                                                        "the batch-256 row): part n's row from run42/state_n/ with "
                                                        "the live anchor at half the weight (W 0.5): val FD 13.38 "
                                                        "(EMA 0.99) at 250, 13.19 at 1,750; stopped at 1,910; scored "
                                                        "at 1,250 (EMA 0.99)"),
    "sid_lsg_teacher_cfg_b256_live_anchor025_dpmpp8_run42o": (f"{R}42/distill/o_b256/result.json", ("row",), "run15",
                                                              "run 42 part o's batch-256 row (session 58): from "
                                                              "run42/state_n/ at batch 256, lr 3e-5, the live "
                                                              "anchor (DPM++ 8 steps) at W 0.25 on 64 of the 256 "
                                                              "items: val FD 12.45 (EMA 0.99) at 250, 12.41 (EMA "
                                                              "0.996) at 750; stopped at 880; scored at 750 (EMA "
                                                              "0.996); carried on in run42/state_o/"),
    "sid_lsg_teacher_cfg_b256_live_anchor025_kappa4_1.25_run42q": (
        f"{R}42/distill/q_kappa4_125/result.json", ("row",), "run15",
        "run 42 part q (session 59, two H100 calls, graph step beside the κ4 1 row): part o's batch-256 row from "
        "run42/state_o/ with SiD's teacher guidance κ4 lowered to 1.25 and the live anchor's sampler kept at CFG 1.5 "
        "(live_anchor_cfg), batch 256 as two micro-batches: val FD 12.40 (EMA 0.999) at 250, 12.64 at 750; stopped "
        "at 779; scored at 250 (EMA 0.999)"),
    "sid_lsg_teacher_cfg_b256_live_anchor025_kappa4_1_run42q": (
        f"{R}42/distill/q_kappa4_1/result.json", ("row",), "run15",
        "run 42 part q's κ4 1 row (session 59): the same with no teacher guidance in SiD's generator loss (the "
        "anchor still at CFG 1.5): val FD 12.64 (EMA 0.999) at 250, 13.38 at 750; stopped at 850; scored at 250 "
        "(EMA 0.999)"),
    "sid_lsg_teacher_cfg_b256_live_anchor025_all_items_run42r": (
        f"{R}42/distill/r_all_anchored/result.json", ("row",), "run15",
        "run 42 part r (session 60, two H100 calls, graph step beside the κ4 1.25 row): part o's batch-256 row from "
        "run42/state_o/ with every item anchored (four micro-batches of 64, live_anchor_items=64) at W 0.25, anchor at "
        "CFG 1.5: val FD 12.51 (EMA 0.999) / 13.22 (EMA 0.99) at 250; stopped at 473, before the 500 point; scored at "
        "250 (EMA 0.999); no state kept"),
    "sid_lsg_teacher_cfg_b256_live_anchor025_all_items_kappa4_1.25_run42r": (
        f"{R}42/distill/r_all_anchored_kappa4_125/result.json", ("row",), "run15",
        "run 42 part r's κ4 1.25 row (session 60): the same with SiD's teacher guidance at 1.25: val FD 12.68 (EMA "
        "0.999) / 14.09 (EMA 0.99) at 250; stopped at 472; scored at 250 (EMA 0.999)"),
    "sid_lsg_teacher_cfg_b256_live_anchor025_live_gan01_lead1000_run42s": (
        f"{R}42/distill/s_live_gan_lead/result.json", ("row",), "run15",
        "run 42 part s (session 62, three H100 calls, graph step): part o's batch-256 row from run42/state_o/ with "
        "the live GAN: G and ψ held for 1,000 steps while D (t ≤ 100, minibatch std of 4) trains on 32 live pairs a "
        "step (d_rank_acc 0.98 at 1,000), then G hears D at 0.1 of SiD's norm: val FD 12.26 (G held) → 12.53 (EMA "
        "0.999) / 12.99 (0.99) at 1,250, 12.72-12.98 (0.999) from 1,500 to 2,500 while d_rank_acc swung 0.42-1.0; stopped at "
        "2,608; scored at 250, inside the lead: state_o's weights re-scored, not a trained gain"),
    "sid_lsg_teacher_cfg_b256_live_anchor025_alpha1.2_run42t": (
        f"{R}42/distill/t_alpha12/result.json", ("row",), "run15",
        "run 42 part t (session 62, one H100 call, graph step): part o's batch-256 row from run42/state_o/ with "
        "SiD's α 1.2 (the paper's CIFAR/ImageNet value; the released SD scripts use 1): val FD 12.42 (EMA 0.999) / "
        "12.67 (0.996) / 12.77 (0.99) at 250, as part q's κ4 1.25 row (12.40); stopped at 361; scored at 250 (EMA "
        "0.999)"),
}
TARGETS = {  # row → (largest FD / teacher the issue accepts, issue)
    "diffusion2gan_then_sid_lsg_split_anchored_lowlr": (1.10, 14),
    "diffusion2gan_then_sid_lsg_split_anchored": (1.10, 14), "diffusion2gan_then_sid_lsg_anchored": (1.10, 14),
    "diffusion2gan_then_sid_lsg": (1.10, 14), "diffusion2gan": (1.10, 14),
    "diffusion2gan_real_images_d_gan_weight1_continued": (1.10, 14),
    "diffusion2gan_real_images_d_continued_hold": (1.10, 14), "diffusion2gan_real_images_d_continued_lead200": (1.10, 14), "sid_lsg": (1.00, 16), "sid_lsg_teacher_cfg": (1.00, 16),
    "reflow_2rf_4": (1.50, 17), "reflow_2rf_4_run12": (1.50, 17), "instaflow": (1.30, 17),
    "reflow_2rf_4_run40": (1.50, 17), "instaflow_run40": (1.30, 17), "instaflow_gan_run41": (1.30, 17),
    "instaflow_gan_fixed01_run43": (1.30, 17), "instaflow_gan_adaptive4_run43": (1.30, 17),
    "sid_lsg_teacher_cfg_run42a": (1.00, 16), "sid_lsg_teacher_cfg_fake_steps2_run42a": (1.00, 16),
    "sid_lsg_teacher_cfg_lr1e-5_run42b": (1.00, 16), "sid_lsg_teacher_cfg_lr3e-5_run42b": (1.00, 16),
    "sid_lsg_teacher_cfg_b64_run42c": (1.00, 16), "sid_lsg_teacher_cfg_b256_run42c": (1.00, 16),
    "sid_lsg_teacher_cfg_b64_run42d": (1.00, 16), "sid_lsg_teacher_cfg_b64_run42e": (1.00, 16),
    "sid_lsg_teacher_cfg_b64_lr3e-6_run42f": (1.00, 16), "sid_lsg_teacher_cfg_b64_kappa4_1.25_run42f": (1.00, 16),
    "sid_lsg_teacher_cfg_b64_lr3e-6_run42g": (1.00, 16), "sid_lsg_teacher_cfg_b64_cosine_run42g": (1.00, 16),
    "sid_lsg_teacher_cfg_b256_lr3e-6_run42h": (1.00, 16), "sid_lsg_teacher_cfg_b64_fake5_run42h": (1.00, 16),
    "sid_lsg_teacher_cfg_live_anchor1_run42j": (1.00, 16), "sid_lsg_teacher_cfg_live_anchor2_run42j": (1.00, 16),
    "sid_lsg_teacher_cfg_live_anchor1_items32_run42k": (1.00, 16),
    "sid_lsg_teacher_cfg_live_anchor1_items32_run42l": (1.00, 16),
    "sid_lsg_teacher_cfg_live_anchor1_dpmpp8_run42m": (1.00, 16), "sid_lsg_teacher_cfg_live_anchor1_dpmpp8_gan03_run42m": (1.00, 16),
    "sid_lsg_teacher_cfg_live_anchor1_dpmpp8_run42n": (1.00, 16), "sid_lsg_teacher_cfg_live_anchor2_dpmpp8_run42n": (1.00, 16),
    "sid_lsg_teacher_cfg_live_anchor05_dpmpp8_run42o": (1.00, 16),
    "sid_lsg_teacher_cfg_b256_live_anchor025_dpmpp8_run42o": (1.00, 16),
    "sid_lsg_teacher_cfg_b256_live_anchor025_kappa4_1.25_run42q": (1.00, 16),
    "sid_lsg_teacher_cfg_b256_live_anchor025_kappa4_1_run42q": (1.00, 16),
    "sid_lsg_teacher_cfg_b256_live_anchor025_all_items_run42r": (1.00, 16),
    "sid_lsg_teacher_cfg_b256_live_anchor025_all_items_kappa4_1.25_run42r": (1.00, 16),
    "sid_lsg_teacher_cfg_b256_live_anchor025_live_gan01_lead1000_run42s": (1.00, 16),
    "sid_lsg_teacher_cfg_b256_live_anchor025_alpha1.2_run42t": (1.00, 16),
}


def _record(path: str, keys: tuple[str, ...]) -> dict:
    with open(os.path.join(REPO, path), encoding="utf-8") as f:
        node = json.load(f)
    for k in keys:
        node = node[k]
    return node


def teacher_fd(row: dict, teacher: dict) -> float:
    """What a row's FD is divided by: the teacher's mean FD over the row's own scoring seeds when the teacher was scored
    on all of them (paired: a seed's noise moves both alike — runs 15–17 saw 0.24 FD between two seeds of one student),
    else the teacher's FD over its own seeds."""
    seeds, own = row.get("seeds"), teacher.get("seeds")
    if seeds and own and set(seeds) <= set(own):
        by_seed = dict(zip(own, teacher["fd_seeds"]))
        return sum(by_seed[s] for s in seeds) / len(seeds)
    return teacher["fd"]


def collect() -> dict:
    rows = {}
    for name, (path, keys, evaluator, what) in SOURCES.items():
        rec = _record(path, keys)
        rows[name] = {k: rec[k] for k in KEEP if k in rec} | {"what": what, "evaluator": evaluator, "source": "/".join((path, *keys))}
    for name, row in rows.items():
        divisor = teacher_fd(row, rows[TEACHERS[row["evaluator"]]])
        row["teacher_fd"], row["fd_ratio"] = round(divisor, 4), round(row["fd"] / divisor, 4)
        if name in TARGETS:
            limit, issue = TARGETS[name]
            row["target"] = {"fd_ratio_max": limit, "issue": issue, "met": row["fd_ratio"] <= limit}
    return {"rows": rows, "meta": {
        "evaluator": "proof_scale.evaluator: FD on the proof-scale classifier's features, 10,000 samples per scoring seed; "
                     "a row's fd_ratio is against the teacher row of its own evaluator (TEACHERS), on the row's own scoring seeds "
                     "where the teacher was scored on them (teacher_fd)",
        "teachers": dict(TEACHERS),
        "command": "python -m tools.collect_proof_scale",
    }}


def markdown(result: dict) -> str:
    lines = ["| row | FD | FD / teacher | target | precision | recall | class acc | NFE | evaluator | what |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in result["rows"].items():
        t = r.get("target")
        target = f"≤ {t['fd_ratio_max']:.2f}× ({'met' if t['met'] else 'missed'})" if t else ""
        lines.append(f"| {name} | {r['fd']:.2f} | {r['fd_ratio']:.2f} | {target} | {r['precision']:.3f} | {r['recall']:.3f} | "
                     f"{r['class_acc']:.4f} | {r.get('nfe', '–')} | {r['evaluator']} | {r['what']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.collect_proof_scale", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="only compare the committed file with what SOURCES gives")
    a = p.parse_args(argv)
    result = collect()
    path = os.path.join(REPO, OUT)
    if a.check:
        with open(path, encoding="utf-8") as f:
            same = json.load(f) == json.loads(json.dumps(result))
        print(f"{OUT}: {'up to date' if same else 'STALE: run python -m tools.collect_proof_scale'}")
        return 0 if same else 1
    write_json(path, result)
    print(markdown(result))
    print(f"\nwrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
