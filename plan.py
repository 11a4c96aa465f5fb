"""Plan to image goals with a trained world model (or the env's oracle) and compare planners.

    python plan.py checkpoint=outputs/train/two_rooms/world_model.pt             # GRASP and CEM, dataset goals
    python plan.py checkpoint=PATH planners=[grasp,cem,gd,mppi] episodes=50 output_dir=DIR
    python plan.py world_model=oracle goals=door horizon=30 max_steps=120       # planners apart from learning
    python plan.py checkpoint=PATH goals=image goal_image=goal.png
    python plan.py checkpoint=PATH mode=open_loop planner.grasp.iterations=500

Config: configs/plan.yaml on top of `PlanConfig` in jepa_plan/config.py. Every planner runs on
the same starts and goals. Files go to output_dir (default outputs/plan/<env>): results.json,
episodes.csv, plots, one GIF per episode, an offline W&B run.
"""

from jepa_plan.planning import main

if __name__ == "__main__":
    main()
