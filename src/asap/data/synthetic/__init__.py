"""An embedded, synthetic DGM4 set: the real layout and protocol, generated in seconds, for tests and CPU runs.

It is NOT DGM4 and says nothing about results on DGM4. It exists so that the whole pipeline (data layer, model,
losses, metrics, aux-text alignment) runs and learns end to end on a laptop CPU with nothing downloaded.

What it is (details in docs/synthetic.md): news-like photos of 1-3 cartoon people drawn in one of six places.
Each of 8 named people has a visible identity (skin colour, hair colour and style); each face shows one of three
expressions (smile / frown / surprise via mouth and eyebrows); captions name the people left to right, say their
emotion and the place, plus a text-only action. The 9 `fake_cls` kinds come in DGM4's proportions:

- face swap: another person's face pasted into the box, with a hard seam and a colour cast;
- face attribute: the expression changed inside the box, pasted blurred, washed out and feathered;
- text swap: another scene's caption; `fake_text_pos` marks the words that differ from the original;
- text attribute: emotion words flipped; `fake_text_pos` marks them.

Boxes are the manipulated face's box (22-40% of the shorter side, so faces survive 64x64). The caption cache holds
what an ideal captioner says about the (possibly manipulated) image, without names; the explanation cache holds an
elaboration of the (possibly manipulated) text: what the named people and the place look like. Both are written
with `AuxTextWriter` (model "oracle"), keyed by (image, text) like the real caches.

`generate_synthetic_dgm4(root, num_train=2000, num_val=300, num_test=300, seed=0)` writes it once (a manifest
with the generator version and parameters makes it idempotent); numpy + PIL only, deterministic in the seed.
"""

from asap.data.synthetic.generate import GENERATOR_VERSION, PROPORTIONS, generate_synthetic_dgm4

__all__ = ["GENERATOR_VERSION", "PROPORTIONS", "generate_synthetic_dgm4"]
