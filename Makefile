# The two commands of the README:  make demo  |  make test
# Each creates (or reuses) .venv and installs exactly the lock (lock/cpu.txt, or lock/gpu.txt where
# nvidia-smi finds a GPU), then checks that what is installed equals it. Without an NVIDIA GPU nothing
# CUDA is installed: torch 2.13.0 goes in first on its own, so pip takes the CPU build on disk.
# `make lock` re-resolves after a setup.py change; `make lock-upgrade` moves to newer releases and
# replaces the lock only when the suite passes on them (scripts/lock.py).
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.wm-installed
HAS_GPU := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo 1)
EXTRA  := $(if $(HAS_GPU),gpu,cpu)
export MUJOCO_GL ?= egl
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST
export PYTHONUNBUFFERED := 1

LOCK   := lock/$(EXTRA).txt

.PHONY: demo test bench rwm visual panda push push-plan setup clean lock lock-upgrade lock-check
setup: $(STAMP)

$(STAMP): setup.py Makefile $(LOCK) scripts/lock.py
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) scripts/lock.py sync --variant $(EXTRA)
	@touch $(STAMP)

lock-check: $(STAMP)
	$(PY) scripts/lock.py check --variant $(EXTRA)

lock:
	python3 scripts/lock.py compile

lock-upgrade:
	python3 scripts/lock.py upgrade

demo: $(STAMP)
	$(PY) -m wm_control demo --duration $${DEMO_SECONDS:-20}

test: $(STAMP)
	$(PY) scripts/lock.py check --variant $(EXTRA)
	$(PY) -m pytest -q -p no:cacheprovider tests

bench: $(STAMP)
	$(PY) -m wm_control bench transport --json runs/bench/transport.json
	$(PY) -m wm_control bench loop --json runs/bench/loop.json

# Offline RL with RWM-U (README "Policies from logs"): two more offline data sets (narrow: a slow, noisy
# expert; slow: a slow, nearly clean one), BC on each, one self-forced ensemble per data set, a PPO
# lambda sweep inside each, the planner bundle, the suite in the true simulator, the planner benchmark.
RWM_LAMS_EXPERT ?= 0,1
RWM_LAMS ?= 0,0.1,1,5
rwm: $(STAMP)
	test -e data/reacher_narrow/index.json || $(PY) -m wm_control collect --out data/reacher_narrow \
	    --episodes 400 --no-images --gain 0.1 --noise 0.3 --seed 7
	test -e data/reacher_slow/index.json || $(PY) -m wm_control collect --out data/reacher_slow \
	    --episodes 400 --no-images --gain 0.1 --noise 0.05 --seed 11
	test -e bundles/bc/manifest.yaml || $(PY) -m wm_control train bc --data data/reacher_expert --out runs/bc --bundle bundles/bc
	for d in narrow slow; do \
	  $(PY) -m wm_control train bc --data data/reacher_$$d --out runs/bc_$$d --bundle bundles/bc_$$d || exit 1; done
	for d in expert narrow slow; do \
	  $(PY) -m wm_control train ensemble --regime self --data data/reacher_$$d --out runs/ensemble_$$d || exit 1; done
	$(PY) -m wm_control export runs/ensemble_expert --out bundles/ensemble --policy-bundle bundles/bc
	$(PY) -m wm_control train policy --ensemble runs/ensemble_expert --lam $(RWM_LAMS_EXPERT) --out runs/ppo_expert \
	    --bundle bundles/ppo_expert
	for d in narrow slow; do $(PY) -m wm_control train policy --ensemble runs/ensemble_$$d --lam $(RWM_LAMS) \
	    --out runs/ppo_$$d --bundle bundles/ppo_$$d || exit 1; done
	$(PY) -m wm_control eval suite --suite eval_rwm.yaml --json runs/eval/rwm.json --resume
	$(PY) -m wm_control bench planner --bundle bundles/ppo_expert_lam1 --json runs/bench/planner.json

# The visual world model (README "The visual world model"): camera bags (collected when missing), every
# stage, the bundle, then the evaluation (teacher vs student, latent vs real actions, KV cache, speed)
# and what the latent adds to the ensemble and the policy.
visual: $(STAMP)
	$(PY) -m wm_control train visual --preset quick --data data/reacher_video --out runs/visual --bundle bundles/visual --resume
	$(PY) -m wm_control eval visual --json runs/eval/visual.json
	$(PY) -m wm_control eval visual-state --json runs/eval/visual_state.json

# The Franka Panda from its own bags only (README "Your robot"): the simulator stands in for the arm and
# its teleop/recording; everything after the bags reads config/robots/panda.yaml (+ panda.urdf) and
# nothing else about the robot. BC and the RWM-U planner against the scripted expert, 3 s reaches.
PANDA_EPISODES ?= 100
panda: $(STAMP)
	test -e data/panda_expert/index.json || $(PY) -m wm_control collect --robot panda --out data/panda_expert \
	    --episodes 400 --no-images --noise 0.1 --seed 4
	$(PY) -m wm_control dataset data/panda_expert --robot-config panda --no-images --json runs/panda/dataset.json
	test -e bundles/panda_bc/manifest.yaml || $(PY) -m wm_control train bc --robot-config panda \
	    --data data/panda_expert --out runs/panda_bc --bundle bundles/panda_bc
	test -e bundles/panda_planner/manifest.yaml || $(PY) -m wm_control train ensemble --robot-config panda \
	    --regime self --data data/panda_expert --out runs/panda_ensemble --bundle bundles/panda_planner \
	    --policy-bundle bundles/panda_bc
	$(PY) -m wm_control verify bundles/panda_bc --robot panda
	$(PY) -m wm_control verify bundles/panda_planner --robot panda
	$(PY) -m wm_control eval closed-loop --robot panda --episode-s 3 --episodes $(PANDA_EPISODES) \
	    --policy expert,bundles/panda_bc,planner:bundles/panda_planner --json runs/panda/eval.json

# The push task (README "Pushing from pixels"): a 7-joint arm pushes an object that only the camera sees.
# Camera bags of three qualities (noisy expert, low-quality/narrow, mixed), the visual world model on the
# mixed video, BC from pixels per data set (bundles whose policy reads /wm/latent) and in the goal-image mode,
# those bundles over the live graph with the camera in the loop (eval suite, lock-step), then per data set the behaviour policy, BC from pixels
# and BC with the true object (privileged) in the simulator from the same starts and goals, and the loop's
# camera-to-command latency on the frame whose latent the command used. PUSH_EPISODES per entry.
PUSH_EPISODES ?= 100
PUSH_VISUAL ?= --enc-keypoints 16
PUSH_COLLECT := $(PY) -m wm_control collect --robot pusher --episode-reset full --image-size 64
push: $(STAMP)
	test -e data/push_expert/index.json || $(PUSH_COLLECT) --quality expert --episodes 300 --seed 1 --out data/push_expert
	test -e data/push_mixed/index.json || $(PUSH_COLLECT) --quality mixed --episodes 300 --seed 2 --out data/push_mixed
	test -e data/push_mixed_heldout/index.json || $(PUSH_COLLECT) --quality mixed --episodes 40 --seed 3 \
	    --out data/push_mixed_heldout
	test -e data/push_low/index.json || $(PUSH_COLLECT) --quality low --episodes 300 --seed 4 --out data/push_low
	test -e bundles/visual_push/manifest.yaml || $(PY) -m wm_control train visual --preset quick --robot pusher \
	    --episode-s 5 --data data/push_mixed --heldout data/push_mixed_heldout $(PUSH_VISUAL) --out runs/visual_push \
	    --bundle bundles/visual_push --resume
	for d in expert low mixed; do test -e bundles/push_pixels_$$d/manifest.yaml || $(PY) -m wm_control train bc \
	    --robot pusher --data data/push_$$d --visual bundles/visual_push --observation joint_trig_goal_xy_latent \
	    --out runs/push_pixels_$$d --bundle bundles/push_pixels_$$d || exit 1; done
	test -e bundles/push_goalimg_expert/manifest.yaml || $(PY) -m wm_control train bc --robot pusher \
	    --data data/push_expert --visual bundles/visual_push --observation joint_trig_goal_image_latent \
	    --out runs/push_goalimg_expert --bundle bundles/push_goalimg_expert
	$(PY) -m wm_control eval suite --suite eval_push.yaml --episodes $(PUSH_EPISODES) --json runs/eval/push_suite.json \
	    --resume
	$(PY) -m wm_control eval push --model runs/visual_push --episodes $(PUSH_EPISODES) --json runs/eval/push.json \
	    --data expert=data/push_expert low=data/push_low mixed=data/push_mixed
	$(PY) -m wm_control bench loop --bundle bundles/push_pixels_expert --json runs/bench/loop_push.json

# The push task planned in the visual world model (README "Planning from pixels"; after `make push`): RWM-U
# ensembles over (q, qd, the camera latent) whose reward head learns the object's distance to the goal from the
# labels of 10% of the episodes; planners around BC from pixels on the expert and low logs; teacher vs
# self-forcing on the expert logs, read back through the object probe (eval world-model on held-out expert
# bags; random-policy camera bags for out of distribution); lambda 0 against the penalty over the live graph;
# the goal-image mode planned by the energy to the goal image's latent (the expert ensemble around goal-image BC);
# the planner's speed.
PUSH_ENSEMBLE := $(PY) -m wm_control train ensemble --robot pusher --visual bundles/visual_push --reward object
push-plan: $(STAMP)
	test -e data/push_random/index.json || $(PUSH_COLLECT) --policy random --episodes 40 --seed 5 --out data/push_random
	test -e data/push_expert_heldout/index.json || $(PUSH_COLLECT) --quality expert --episodes 40 --seed 6 \
	    --out data/push_expert_heldout
	for d in expert low; do test -e bundles/push_planner_$$d/manifest.yaml || $(PUSH_ENSEMBLE) --regime self \
	    --data data/push_$$d --out runs/push_ensemble_$$d --bundle bundles/push_planner_$$d \
	    --policy-bundle bundles/push_pixels_$$d || exit 1; done
	test -e bundles/push_planner_goalimg_expert/manifest.yaml || $(PY) -m wm_control export runs/push_ensemble_expert \
	    --out bundles/push_planner_goalimg_expert --policy-bundle bundles/push_goalimg_expert
	test -e runs/push_ensemble_expert_teacher/checkpoint.yaml || $(PUSH_ENSEMBLE) --regime teacher \
	    --data data/push_expert --out runs/push_ensemble_expert_teacher
	$(PY) -m wm_control eval world-model --model runs/push_ensemble_expert --teacher runs/push_ensemble_expert_teacher \
	    --heldout data/push_expert_heldout --ood data/push_random --json runs/eval/push_world_model.json
	$(PY) -m wm_control eval suite --suite eval_push_plan.yaml --episodes $(PUSH_EPISODES) \
	    --json runs/eval/push_plan_suite.json --resume
	$(PY) -m wm_control bench planner --bundle bundles/push_planner_expert --samples 128 --horizon 8 \
	    --json runs/bench/planner_push.json
	$(PY) -m wm_control bench planner --bundle bundles/push_planner_goalimg_expert --samples 128 --horizon 8 \
	    --json runs/bench/planner_push_goalimg.json

clean:
	rm -rf $(VENV) build *.egg-info runs
