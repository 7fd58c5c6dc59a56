"""proof_scale.rows: variant folder names stay legal on every file system; the D-backbone, D-optimiser and compile keys reach the trainer."""
import os

import pytest
import torch

from proof_scale import rows


LONG = ("diffusion2gan@init_from=regression_latentlpips:regression=latentlpips:lr=3e-5:lr_warmup=100:gan_warmup=200:"
        "d_lead=200:gan_ramp=300:gan_weight=0.5:r1_gamma=1:lr_d_ratio=5:batch=512:d_t_max=100:mix_and_match=false:"
        "lr_d_schedule=constant:d_beta1=0:d_beta2=0.99:steps=2000")


def test_a_long_variant_gets_a_short_distinct_folder_name(tmp_path):
    # run 11's first call died making this folder: 263 characters, over the 255 that file systems allow
    name, other = rows.row_dir_name(LONG), rows.row_dir_name(LONG + ":d_backbone=lora")
    assert len(name) <= 180 and len(other) <= 180 and name != other
    assert name.startswith("diffusion2gan__init_from-regression_latentlpips") and name == rows.row_dir_name(LONG)
    os.makedirs(tmp_path / name)
    assert rows.row_dir_name("regression_mse@lr=1e-4") == "regression_mse__lr-1e-4"  # short names unchanged


def test_d_backbone_keys_reach_the_discriminator_config():
    plan = rows.plan(LONG + ":d_backbone=lora:d_lora_rank=8:d_readout=decoder", rows.ROW_DEFAULTS)
    d = rows.train_config(plan, bf16=False, save_every=0).discriminator
    assert (d.backbone, d.lora_rank, d.readout) == ("lora", 8, "decoder")
    d = rows.train_config(rows.plan(LONG, rows.ROW_DEFAULTS), bf16=False, save_every=0).discriminator
    assert (d.backbone, d.lora_rank, d.readout) == ("full", 64, "encoder")


def test_d_optimiser_defaults_to_the_methods_and_a_plan_can_set_it():
    o = rows.train_config(rows.plan("diffusion2gan", rows.ROW_DEFAULTS), bf16=False, save_every=0).optim
    assert o.betas_d == (0.9, 0.99) and o.betas == (0.9, 0.999)  # D's β2 0.99 (run 12), G's unchanged
    o = rows.train_config(rows.plan(LONG, rows.ROW_DEFAULTS), bf16=False, save_every=0).optim
    assert o.betas_d == (0.0, 0.99)
    o = rows.train_config(rows.plan("diffusion2gan@d_beta2=0.999", rows.ROW_DEFAULTS), bf16=False, save_every=0).optim
    assert o.betas_d == (0.9, 0.999)  # runs 10–11 as they ran
    assert o.eps_d == 1e-8 and rows.train_config(rows.plan("diffusion2gan@d_eps=1e-5", rows.ROW_DEFAULTS), bf16=False, save_every=0).optim.eps_d == 1e-5


def test_hold_g_and_gan_scale_max_reach_the_loss_config():
    lo = rows.train_config(rows.plan(LONG, rows.ROW_DEFAULTS), bf16=False, save_every=0).loss
    assert not lo.hold_generator and lo.gan_scale_max == 10.0
    lo = rows.train_config(rows.plan(LONG + ":hold_g=true:gan_scale_max=1", rows.ROW_DEFAULTS), bf16=False, save_every=0).loss
    assert lo.hold_generator and lo.gan_scale_max == 1.0


def test_compile_reaches_the_trainer_only_when_a_plan_sets_it():
    plain = rows.plan("diffusion2gan@r1_gamma=0", rows.ROW_DEFAULTS)
    assert "compile" not in plain and not rows.train_config(plain, bf16=False, save_every=0).compile_blocks  # old plans resume as they were
    assert rows.train_config(rows.plan("diffusion2gan@r1_gamma=0:compile=true", rows.ROW_DEFAULTS), bf16=False, save_every=0).compile_blocks
    sid = rows.plan("sid_lsg@compile=true", rows.ROW_DEFAULTS, teacher_cfg=1.5)
    assert rows.train_config(sid, bf16=False, save_every=0).compile_blocks
    assert rows.train_config(sid, bf16=False, save_every=0).compile_mode == "default"
    graphed = rows.plan("sid_lsg_teacher_cfg@compile=true:compile_mode=reduce-overhead", rows.ROW_DEFAULTS, teacher_cfg=1.5)
    assert rows.train_config(graphed, bf16=False, save_every=0).compile_mode == "reduce-overhead"
    with pytest.raises(ValueError, match="compile_mode must be one of"):
        rows.train_config(rows.plan("sid_lsg@compile=true:compile_mode=fast", rows.ROW_DEFAULTS, teacher_cfg=1.5), bf16=False, save_every=0)


def test_instaflow_takes_the_gan_term_and_reflow_refuses_it():
    plan = rows.plan("instaflow@gan=true:gan_warmup=200:d_lead=200:r1_gamma=0:d_t_max=100", rows.ROW_DEFAULTS)
    c = rows.train_config(plan, bf16=False, save_every=0)
    assert c.method == "instaflow-gan" and c.discriminator.enabled and c.discriminator.d_t_max == 100 and c.loss.warmup_steps == 200
    plain = rows.train_config(rows.plan("instaflow", rows.ROW_DEFAULTS), bf16=False, save_every=0)
    assert plain.method == "instaflow" and not plain.discriminator.enabled
    with pytest.raises(ValueError, match="reflow has none"):
        rows.train_config(rows.plan("reflow_2rf@gan=true", rows.ROW_DEFAULTS), bf16=False, save_every=0)


def test_a_sid_rows_live_gan_takes_the_d_settings_the_diffusion2gan_rows_take():
    """D on t ≤ 100 with a minibatch std (issue 14's best D) for the live GAN: the plan's keys reach its
    DiscriminatorConfig; a plan that sets none keeps the defaults (runs before the keys resume unchanged)."""
    tuned = rows.plan("sid_lsg_teacher_cfg@live_anchor=0.25:live_gan=0.1:d_t_max=100:d_mbstd=4:r1_every=4:z_conditioning=false",
                      rows.ROW_DEFAULTS, teacher_cfg=1.5)
    d = rows.train_config(tuned, bf16=False, save_every=0).discriminator
    assert (d.d_t_max, d.mbstd_group, d.r1_every, d.z_conditioning, d.d_t_min, d.r1_gamma) == (100, 4, 4, False, 0, 1.0)
    plain = rows.train_config(rows.plan("sid_lsg_teacher_cfg", rows.ROW_DEFAULTS, teacher_cfg=1.5), bf16=False, save_every=0)
    assert plain.discriminator == rows.DiscriminatorConfig()
    with pytest.raises(ValueError, match="d_readout"):  # a D key the live GAN does not read is refused by name
        rows.plan("sid_lsg_teacher_cfg@d_readout=decoder", rows.ROW_DEFAULTS, teacher_cfg=1.5)


def test_a_sid_row_sets_the_fake_scores_steps_per_generator_step():
    plain = rows.plan("sid_lsg_teacher_cfg", rows.ROW_DEFAULTS, teacher_cfg=1.5)
    assert "fake_steps" not in plain and rows.train_config(plain, bf16=False, save_every=0).sid.fake_steps == 1  # the official loop
    two = rows.plan("sid_lsg_teacher_cfg@fake_steps=2", rows.ROW_DEFAULTS, teacher_cfg=1.5)
    assert rows.train_config(two, bf16=False, save_every=0).sid.fake_steps == 2
    bounded = rows.plan("sid_lsg_teacher_cfg@kappa4_t_min=250", rows.ROW_DEFAULTS, teacher_cfg=1.5)
    assert rows.train_config(bounded, bf16=False, save_every=0).sid.kappa4_t_min == 250
    assert rows.train_config(plain, bf16=False, save_every=0).sid.kappa4_t_min == 0  # guided at every t, the official
    live = rows.plan("sid_lsg_teacher_cfg@live_anchor=1:live_anchor_items=8", rows.ROW_DEFAULTS, teacher_cfg=1.5)
    s = rows.train_config(live, bf16=False, save_every=0).sid
    assert (s.live_anchor_weight, s.live_anchor_items, s.live_anchor_steps, s.anchor_weight) == (1.0, 8, rows.SidConfig.live_anchor_steps, 0.0)
    assert rows.data_folder(live["row"], live) is None  # still prompts only: no teacher pairs
    steps = rows.plan("sid_lsg_teacher_cfg@live_anchor=0.5:live_anchor_steps=10", rows.ROW_DEFAULTS, teacher_cfg=1.5)
    assert rows.train_config(steps, bf16=False, save_every=0).sid.live_anchor_steps == 10
    second = rows.plan("sid_lsg_teacher_cfg@live_anchor=1:live_anchor_sampler=dpmpp_2m:live_anchor_spacing=exponential:kappa4=1.25:"
                       "live_anchor_cfg=1.5", rows.ROW_DEFAULTS, teacher_cfg=1.5)
    s = rows.train_config(second, bf16=False, save_every=0).sid
    assert (s.live_anchor_sampler, s.live_anchor_spacing, s.kappa4, s.anchor_cfg) == ("dpmpp_2m", "exponential", 1.25, 1.5)
    assert rows.train_config(live, bf16=False, save_every=0).sid.live_anchor_cfg == 0.0  # the sampler at κ4
    halves = rows.plan("sid_lsg_teacher_cfg@batch=256:grad_accumulation=2", rows.ROW_DEFAULTS, teacher_cfg=1.5)
    c = rows.train_config(halves, bf16=False, save_every=0)
    assert (c.batch_size, c.optim.grad_accumulation) == (256, 2)
    assert rows.train_config(live, bf16=False, save_every=0).optim.grad_accumulation == 1
    assert (rows.train_config(live, bf16=False, save_every=0).sid.live_anchor_sampler, s.__class__.live_anchor_spacing) == ("ddim", "linspace")
    assert rows.train_config(plain, bf16=False, save_every=0).sid.live_anchor_weight == 0.0
    gan = rows.plan("sid_lsg_teacher_cfg@live_anchor=1:live_gan=0.3:live_gan_lr=1e-4", rows.ROW_DEFAULTS, teacher_cfg=1.5)
    s = rows.train_config(gan, bf16=False, save_every=0).sid
    assert (s.live_gan_weight, s.live_gan_lr, s.live_anchor_weight) == (0.3, 1e-4, 1.0) and rows.data_folder(gan["row"], gan) is None
    assert rows.train_config(plain, bf16=False, save_every=0).sid.live_gan_weight == 0.0
    held = rows.plan("sid_lsg_teacher_cfg@live_anchor_items=64:live_gan=0.1:live_gan_start=1000:live_gan_hold=true", rows.ROW_DEFAULTS,
                     teacher_cfg=1.5)
    s = rows.train_config(held, bf16=False, save_every=0).sid
    assert (s.live_gan_hold, s.live_gan_start, s.live_anchor_weight) == (True, 1000, 0.0)
    assert rows.train_config(gan, bf16=False, save_every=0).sid.live_gan_hold is False


def test_a_sid_row_sets_its_precision_over_the_devices_default():
    plain = rows.plan("sid_lsg_teacher_cfg", rows.ROW_DEFAULTS, teacher_cfg=1.5)
    assert rows.train_config(plain, bf16=True, save_every=0).bf16  # the GPU's default: bf16 autocast
    for precision, bf16 in (("bf16", True), ("tf32", False), ("fp32", False)):
        plan = rows.plan(f"sid_lsg_teacher_cfg@precision={precision}", rows.ROW_DEFAULTS, teacher_cfg=1.5)
        assert rows.train_config(plan, bf16=True, save_every=0).bf16 is bf16
    with pytest.raises(ValueError, match="precision='fp16': one of bf16, tf32, fp32"):
        rows.plan("sid_lsg_teacher_cfg@precision=fp16", rows.ROW_DEFAULTS, teacher_cfg=1.5)


def test_an_fp32_row_turns_tf32_off_on_a_gpu_and_the_next_row_gets_it_back():
    from proof_scale.distill import set_tf32
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32  # process-wide flags: restored below
    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        set_tf32({"precision": "fp32"}, torch.device("cuda"))
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        set_tf32({}, torch.device("cuda"))
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        set_tf32({"precision": "fp32"}, torch.device("cpu"))  # the CPU: nothing to switch
        assert torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
