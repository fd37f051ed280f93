"""Running an IR network on Lava's CPU backend sample by sample: its inputs, the chunked runner and the activity
it counts. ``snndeploy simulate`` (:mod:`snndeploy.simulate`) and ``snndeploy deploy`` are the commands on top."""
