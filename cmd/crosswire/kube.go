package main

import (
	"fmt"

	"github.com/crosswire/crosswire/controller"

	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Client limits: an agent lists and watches Nodes once and otherwise only
// patches its own Node and records a few Events, so a small budget per node
// keeps a large cluster's agents from loading the API server.
const (
	kubeQPS       = 5
	kubeBurst     = 10
	kubeUserAgent = "crosswire-agent"
)

// kubeConfig loads the client configuration: the kubeconfig file when given,
// else the in-cluster service account.
func kubeConfig(kubeconfig string) (*rest.Config, error) {
	var cfg *rest.Config
	var err error
	if kubeconfig == "" {
		cfg, err = rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("in-cluster Kubernetes config (use --kubeconfig or --nodes-file outside a pod): %w", err)
		}
	} else {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("--kubeconfig %s: %w", kubeconfig, err)
		}
	}
	cfg.QPS = kubeQPS
	cfg.Burst = kubeBurst
	cfg.UserAgent = kubeUserAgent
	return cfg, nil
}

// kubeClients are the agent's API clients: one for everything, and one
// for the Node informer's list and watch that decodes Nodes slim. They
// share one HTTP client, so one connection.
type kubeClients struct {
	all   kubernetes.Interface
	nodes typedcorev1.NodeInterface
}

func newKubeClients(kubeconfig string) (kubeClients, error) {
	cfg, err := kubeConfig(kubeconfig)
	if err != nil {
		return kubeClients{}, err
	}
	h, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return kubeClients{}, fmt.Errorf("HTTP client for the API server: %w", err)
	}
	all, err := kubernetes.NewForConfigAndClient(cfg, h)
	if err != nil {
		return kubeClients{}, fmt.Errorf("API client: %w", err)
	}
	nodes, err := controller.NewNodeClient(cfg, h)
	if err != nil {
		return kubeClients{}, err
	}
	return kubeClients{all: all, nodes: nodes}, nil
}
