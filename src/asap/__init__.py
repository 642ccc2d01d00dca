"""ASAP for DGM⁴: detecting and grounding multi-modal media manipulation with auxiliary texts.

Where each equation of the paper lives (paths under src/asap/; docs/fidelity.md lists where the code departs
from the paper, docs/contracts.md the packages and their layering):

| paper | what | file |
|---|---|---|
| eq. 1-3 | L_VLC: image-caption (1), image-explanation (2), image-text contrast (3) | losses/contrastive.py; official mode: losses/official_contrastive.py; the space s(x, y)/tau: models/alignment.py; queues: models/momentum.py |
| eq. 4 | IED detector p(I, E) on delta F_mm^v + F_mm^t | models/heads.py (the MLP), the image-explanation pass in models/asap.py |
| eq. 5 | L_IED | losses/ied.py |
| eq. 6 | L_LMA = L_VLC + L_IED | models/objective.py (the terms), losses/total.py (their weight `lma`) |
| eq. 7 | text->image attention map A | models/attention.py, returned by models/text_biased_encoder.py |
| eq. 8-9 | guidance G, L_MGCA | losses/mgca.py |
| eq. 10 | patch labels P with hard negative patches | data/patches.py |
| eq. 11 | vision-biased encoder E_mm^v | models/vision_biased_encoder.py (text-biased E_mm^t: models/text_biased_encoder.py) |
| eq. 12 | L_PMM, patch classifier C | losses/pmm.py, models/heads.py |
| eq. 13 | L = L_DGM + L_LMA + alpha L_MGCA + lambda L_PMM | models/objective.py (the terms), losses/total.py (weights, sum) |
| supp. §6 | L_DGM: box (L1 + GIoU), BIC, MLC, TMG | losses/dgm.py; heads C_b, C_m, D_v, D_t: models/heads.py |
| Fig. 2 | the forward: encoders, both multimodal encoders, heads | models/asap.py |
| §4.1 | the 12 DGM⁴ metrics (HAMMER's protocol) | metrics/ (binary.py, multilabel.py, grounding.py) |
"""
