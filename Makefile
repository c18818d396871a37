# tinymyo-jax: every command creates .venv on first use and installs the project into it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
EXTRAS ?= export,test,lint,beam,sklearn

WORKDIR ?= runs/pretrain
DATA_DIR ?= data/tfds
PRETRAIN_FLAGS ?= --config.total_steps=40 --config.batch_size=16 --config.log_every=2 \
	--config.eval_every=20 --config.checkpoint_every=20 --config.eval_batches=4
TASK ?= uci
CKPT ?=
DATASET ?= uci_emg
MANUAL_DIR ?=
TEST_WORKERS ?= 2   # pytest-xdist processes for `make test` (0: run in this process)
EXTRA_FLAGS ?=   # appended after the defaults: the last occurrence of a flag wins

.PHONY: venv test test-multiprocess lint pretrain finetune infer data export gap9 bench clean-venv

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip >/dev/null
	$(PY) -m pip install -e ".[$(EXTRAS)]"
	@touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist=worksteal

test-multiprocess: $(STAMP)  # 2-process training, resume, restore and SIGKILL (minutes)
	TINYMYO_MULTIPROCESS_TESTS=1 $(PY) -m pytest tests/multiprocess_test.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .

pretrain: $(STAMP)
	$(PY) -m data_builders.build uci_emg --manual_dir=data_builders/uci_emg/sample --data_dir=$(DATA_DIR)
	$(PY) -m tinymyo_jax.main --config=configs/pretrain.py:default --workdir=$(WORKDIR) \
		--config.data.data_dir=$(abspath $(DATA_DIR)) $(PRETRAIN_FLAGS) $(EXTRA_FLAGS)

finetune: $(STAMP)
	$(PY) -m tinymyo_jax.main --config=configs/finetune.py:$(TASK) \
		--workdir=$(or $(FT_WORKDIR),runs/finetune_$(TASK)) \
		--config.data.data_dir=$(abspath $(DATA_DIR)) \
		--config.init_from=$(if $(CKPT),$(abspath $(CKPT)),auto) $(FINETUNE_FLAGS) $(EXTRA_FLAGS)

infer: $(STAMP)
	@test -n "$(CKPT)" -a -n "$(INPUT)" || (echo "usage: make infer CKPT=<ckpt> INPUT=<.npy|.txt|.mat> [SR=Hz] [HOP=n]"; exit 2)
	$(PY) -m tinymyo_jax.infer --ckpt $(CKPT) $(INPUT) $(if $(SR),--sample_rate $(SR)) \
		$(if $(HOP),--hop $(HOP)) --out $(or $(OUT),predictions.json)

data: $(STAMP)
	@test -n "$(MANUAL_DIR)" || (echo "usage: make data DATASET=<name> MANUAL_DIR=<dir>"; exit 2)
	$(PY) -m data_builders.build $(DATASET) --manual_dir=$(MANUAL_DIR) --data_dir=$(DATA_DIR) \
		$(if $(CONFIG),--config=$(CONFIG))

export: $(STAMP)
	@test -n "$(CKPT)" || (echo "usage: make export CKPT=<ckpt dir or official .safetensors> [TASK=...]"; exit 2)
	$(PY) -m export.all --ckpt $(CKPT) \
		$(if $(filter file,$(origin TASK)),,$(if $(TASK),--task $(TASK))) \
		$(if $(CHANNELS),--channels $(CHANNELS)) --overwrite \
		--out_dir $(or $(OUT),exports/$(notdir $(basename $(CKPT))))

gap9: $(STAMP)
	@test -n "$(CKPT)" || (echo "usage: make gap9 CKPT=<fine-tuned classifier ckpt dir>"; exit 2)
	$(PY) -m export.gap9.codegen --ckpt $(CKPT) \
		$(if $(filter file,$(origin TASK)),,$(if $(TASK),--task $(TASK))) \
		--out $(or $(OUT),build/gap9)

bench: $(STAMP)
	$(PY) bench/train_step.py
	$(PY) bench/infer_latency.py --batch_sizes 1,32

clean-venv:
	rm -rf $(VENV)
