# The long maze protocol for the offline tiny model (issue 11): long enough that Pass@1 training has narrowed
# the policy (its held-out pass@k at large k below the start, its entropy and wrong-answer diversity down), so
# that Pass@k Training has something to prevent. One run of it:
#   python train.py config/maze_tiny_long.py --advantage=NAME --seed=S
# experiments/maze.py --long runs the grid of it (5 seeds); RESULTS.md shows the curve the horizon was chosen from.
model = "tiny"
prompt_template = "compact"
train_sizes = (5, 7)
n_train = {5: 150, 7: 10000}
test_sizes = (5, 7, 9, 11)  # 9x9 and 11x11 are never seen in training (section 3.3's generalisation)
n_test = 30
n_rollouts = 16
k = 4
prompt_batch = 8
mini_batch = 8
learning_rate = 1e-4
lr_warmup_steps = 10
max_new_tokens = 48
max_steps = 600  # HORIZON
eval_every = 300  # a 32-sample evaluation halfway
eval_samples = 32
eval_k = 8
curve_samples = 128  # the first and last evaluations: pass@k curves for k = 1, 2, 4, ..., 128
checkpoint_every = 50
