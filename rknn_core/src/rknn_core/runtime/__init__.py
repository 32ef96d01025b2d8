"""Running graphs on the host: the executor shared by the simulator and the analysis tools."""
