// The standalone remote agent (gRPC stream to a controller on another machine) is not built yet:
// today every agent runs embedded in `stratusd` (all-in-one mode) through the same protocol
// interfaces. This entry point says so instead of pretending.
Console.Error.WriteLine("stratus-agent: the remote agent is not available yet; run `./stratus up` (agents embedded in the controller).");
return 2;
