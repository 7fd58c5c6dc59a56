"""A MODEL whose UNet checks ComfyUI's interrupt flag between its blocks.

Core checks the flag only between sampler steps, and a one-step call is a single step: a large call on a CPU
ran for minutes with /interrupt ignored and the queue blocked (issue 21). The UNet's own patch points (after
each input block, after each self-attention, before each output block) are pieces the pack can reach; an identity patch there that raises
ComfyUI's InterruptProcessingException stops the call within one block. Models without these patch points
(not ldm UNets) ignore the patches and behave as before."""
from __future__ import annotations

import comfy.model_management as mm


def _after_input_block(h, transformer_options):
    mm.throw_exception_if_processing_interrupted()
    return h


def _before_output_block(h, hsp, transformer_options):
    mm.throw_exception_if_processing_interrupted()
    return h, hsp


def _after_self_attention(n, extra_options):
    mm.throw_exception_if_processing_interrupted()
    return n


def interruptible(model):
    """A clone of MODEL (patches are per clone: the caller's MODEL is unchanged) that stops between UNet blocks
    when the user interrupts."""
    m = model.clone()
    m.set_model_input_block_patch(_after_input_block)
    m.set_model_output_block_patch(_before_output_block)
    m.set_model_attn1_output_patch(_after_self_attention)  # inside a block: self-attention is its costliest piece
    return m
