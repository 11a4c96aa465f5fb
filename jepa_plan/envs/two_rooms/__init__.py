"""two_rooms, our built-in env: a point agent in two rooms joined by a door.

- `world`: config, geometry, the vectorised dynamics `step_states` and the renderer;
- `env`: `TwoRoomsEnv`, the batched env protocol (goal sets, collection, coverage, oracle);
- `explorer`: the scripted exploration policy that collects its data;
- `oracle`: its dynamics in torch behind the planner's WorldModel protocol;
- `gym_env`: `TwoRoomsGymEnv`, one episode behind the standard gymnasium API.
"""

from jepa_plan.envs.two_rooms.env import TwoRoomsEnv
from jepa_plan.envs.two_rooms.explorer import TwoRoomsExplorer
from jepa_plan.envs.two_rooms.gym_env import TwoRoomsGymEnv
from jepa_plan.envs.two_rooms.world import (
    AGENT_COLOUR,
    TwoRoomsConfig,
    crossed_door,
    geometry,
    is_free,
    pixel_centres,
    render_states,
    room_of,
    sample_free_state,
    step_states,
)

__all__ = [
    "AGENT_COLOUR", "TwoRoomsConfig", "TwoRoomsEnv", "TwoRoomsExplorer", "TwoRoomsGymEnv", "crossed_door",
    "geometry", "is_free", "pixel_centres", "render_states", "room_of", "sample_free_state", "step_states",
]
