// Sample: a host or client with replicated cubes. Not compiled by the project's tests
// (no Unity there); see README.md beside it for the scene.
using Theta;
using Theta.Unity;
using UnityEngine;

public sealed class BasicSessionSample : MonoBehaviour
{
    public ThetaSession Session;
    public ThetaReplicatedTransform CubePrefab;
    public int Cubes = 10;

    private void Awake()
    {
        // Both roles register the same types before the session starts.
        Session.RegisterTypes = world => ThetaReplicatedTransform.Register(world);
        Session.ReplicaEvent += OnReplicaEvent;
        Session.Joined += peer => Debug.Log("joined as peer " + peer);
        Session.Disconnected += (cause, reason) => Debug.LogWarning("disconnected (" + cause + "): " + reason);
    }

    private void Start()
    {
        if (Session.Role != ThetaSession.SessionRole.Host)
        {
            return;
        }
        Debug.Log("host fingerprint: " + System.BitConverter.ToString(Session.Session.Fingerprint()).Replace("-", ""));
        Debug.Log("token for peer 1: " + Session.Session.MintToken(1, System.TimeSpan.FromHours(1)));
        for (int i = 0; i < Cubes; i++)
        {
            ThetaReplicatedTransform cube = Instantiate(CubePrefab, new Vector3(i - Cubes / 2f, 1, 2), Quaternion.identity);
            cube.Session = Session;
            cube.Owned = true;
        }
    }

    private void Update()
    {
        // The host moves its cubes; their transforms replicate.
        if (Session.Role == ThetaSession.SessionRole.Host)
        {
            foreach (ThetaReplicatedTransform cube in FindObjectsOfType<ThetaReplicatedTransform>())
            {
                cube.transform.Rotate(0, 45 * Time.deltaTime, 0);
            }
        }
    }

    private void OnReplicaEvent(ThetaSession source, SessionEvent e)
    {
        // A client creates a local cube for every entity the host spawned.
        if (e.Kind == SessionEventKind.Spawn && e.Entity.Creator != source.Session.Peer)
        {
            ThetaReplicatedTransform cube = Instantiate(CubePrefab);
            cube.Session = source;
            cube.Entity = e.Entity;
            cube.Owned = false;
        }
    }
}
