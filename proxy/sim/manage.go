package sim

import (
	"net/http"
	"sort"
	"time"

	"github.com/fluxforge/fluxforge/app/bfl"
)

// manage serves my_finetunes, finetune_details and delete_finetune. An
// unknown finetune is 404 {"detail": "Finetune not found: <id>"} throughout.
func (s *Sim) manage(w http.ResponseWriter, r *http.Request, ep bfl.Endpoint) {
	switch ep.Name {
	case "my_finetunes":
		s.myFinetunes(w)
	case "finetune_details":
		s.finetuneDetails(w, r.URL.Query().Get("finetune_id"))
	case "delete_finetune":
		s.deleteFinetune(w, r, ep)
	default:
		writeDetail(w, http.StatusNotFound, "Not Found")
	}
}

// myFinetunes lists every finetune not deleted, training or not, oldest first.
func (s *Sim) myFinetunes(w http.ResponseWriter) {
	s.mu.Lock()
	all := make([]*finetune, 0, len(s.finetunes))
	for _, ft := range s.finetunes {
		all = append(all, ft)
	}
	s.mu.Unlock()
	sort.Slice(all, func(i, j int) bool {
		if !all[i].created.Equal(all[j].created) {
			return all[i].created.Before(all[j].created)
		}
		return all[i].id < all[j].id
	})
	ids := make([]string, len(all))
	for i, ft := range all {
		ids[i] = ft.id
	}
	writeJSON(w, http.StatusOK, bfl.MyFinetunes{Finetunes: ids})
}

func (s *Sim) finetuneDetails(w http.ResponseWriter, id string) {
	s.mu.Lock()
	ft, ok := s.finetunes[id]
	s.mu.Unlock()
	if !ok {
		writeDetail(w, http.StatusNotFound, "Finetune not found: "+id)
		return
	}
	writeJSON(w, http.StatusOK, bfl.FinetuneDetails{Details: ft.details})
}

// deleteFinetune removes the finetune and its training task, so get_result
// on its id then answers "Task not found". Credits are not refunded.
func (s *Sim) deleteFinetune(w http.ResponseWriter, r *http.Request, ep bfl.Endpoint) {
	req, ok := s.readRequest(w, r, ep)
	if !ok {
		return
	}
	id := req.str("finetune_id")
	now := s.cfg.Now()
	s.mu.Lock()
	// A generation's id is a task id too: only a finetune's may delete one.
	if _, ok = s.finetunes[id]; ok {
		delete(s.finetunes, id)
		delete(s.tasks, id)
	}
	s.mu.Unlock()
	if !ok {
		writeDetail(w, http.StatusNotFound, "Finetune not found: "+id)
		return
	}
	writeJSON(w, http.StatusOK, bfl.DeleteFinetuneResponse{
		Status:            "success",
		Message:           "Finetune " + id + " deleted",
		DeletedFinetuneID: id,
		Timestamp:         now.UTC().Format(time.RFC3339),
	})
}
