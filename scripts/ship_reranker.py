"""Copy a trained + calibrated course reranker into the package (weights stored as fp16).

    python scripts/ship_reranker.py runs/course-reranker

The config keeps ``dtype: float32``, so every loader upcasts the fp16 weights to fp32 on load.
The model card (``README.md`` in the asset folder) is written by hand from the measured numbers.
"""
import shutil
import sys
from pathlib import Path

from safetensors.torch import load_file, save_file

SRC = Path(sys.argv[1])
DST = Path(__file__).resolve().parents[1] / "course_lib" / "course_reranker" / "assets"
KEEP = {"config.json", "config_sentence_transformers.json", "modules.json", "sentence_bert_config.json",
        "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
        "training.json", "calibration_report.json"}

DST.mkdir(parents=True, exist_ok=True)
for f in SRC.iterdir():
    if f.name in KEEP:
        shutil.copy2(f, DST / f.name)
tensors = load_file(str(SRC / "model.safetensors"))
save_file({k: v.half().contiguous() for k, v in tensors.items()}, str(DST / "model.safetensors"), metadata={"format": "pt"})
print(f"shipped {SRC} -> {DST}")
