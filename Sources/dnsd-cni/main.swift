// Executed by a container runtime (podman, containerd) as its CNI plugin `dnsd`: CNI_COMMAND
// and the other CNI_* variables in the environment, the network configuration on stdin.
CNIPlugin.main()
