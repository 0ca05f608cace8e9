package e2e

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// rowOf is a JavaScript expression for the table row whose name cell is name.
func rowOf(name string) string {
	return fmt.Sprintf(`[...document.querySelectorAll('#models-table .model-row')].find(r => r.querySelector('.model-name').textContent === %q)`, name)
}

func TestModelBrowserListsDetailsAndDeletesWithConfirmation(t *testing.T) {
	p := StartProxy(t, map[string]string{"SIM_TRAIN_SECONDS": "1"})
	keep := createModel(t, p, "Keeper", "KPR")
	gone := createModel(t, p, "Goner", "GNR")
	waitReady(t, p, keep)
	waitReady(t, p, gone)

	b := NewBrowser(t)
	b.Open(t, p.URL+"/models")
	b.WaitTrue(t, `document.querySelectorAll('#models-table .model-row').length === 2`)
	b.WaitTrue(t, rowOf("Keeper")+`?.querySelector('.model-status').textContent === 'Ready'`)
	row := Eval[string](t, b, rowOf("Keeper")+`.textContent`)
	for _, want := range []string{"KPR", "character", "100", "quality"} {
		if !strings.Contains(row, want) {
			t.Errorf("row lacks %q: %s", want, row)
		}
	}

	// Search narrows the table; sorting by name puts Goner first.
	b.Do(t, chromedp.SendKeys(chromedp.ID("model-search"), "kpr"))
	b.WaitTrue(t, `document.querySelectorAll('#models-table .model-row').length === 1`)
	clearInput(t, b, "model-search")
	b.WaitTrue(t, `document.querySelectorAll('#models-table .model-row').length === 2`)
	b.Do(t, chromedp.Click(chromedp.CSS(".sort-name")))
	b.WaitTrue(t, `document.querySelector('#models-table .model-row .model-name').textContent === 'Goner'`)

	// Details show the id and the training parameters.
	b.Do(t, chromedp.Evaluate[chromedp.Void](rowOf("Keeper")+`.querySelector('.model-details').click()`))
	details := b.WaitText(t, chromedp.CSS("#model-details"), keep)
	if !strings.Contains(details, "trigger_word") || !strings.Contains(details, "KPR") {
		t.Errorf("details: %s", details)
	}
	href := Eval[string](t, b, `document.querySelector('#details-generate').getAttribute('href')`)
	if href != "/generate?model="+keep {
		t.Errorf("generate link %q", href)
	}
	b.Do(t, chromedp.Click(chromedp.ID("close-details")))

	// Cancel keeps the model; confirming deletes it on the account and in the cache.
	b.Do(t, chromedp.Evaluate[chromedp.Void](rowOf("Goner")+`.querySelector('.model-delete').click()`))
	b.WaitText(t, chromedp.CSS("#confirm-delete"), "Goner")
	b.Do(t, chromedp.Click(chromedp.ID("confirm-delete-no")))
	b.WaitTrue(t, `!document.querySelector('#confirm-delete') && document.querySelectorAll('#models-table .model-row').length === 2`)
	b.Do(t, chromedp.Evaluate[chromedp.Void](rowOf("Goner")+`.querySelector('.model-delete').click()`))
	b.Do(t, chromedp.Click(chromedp.ID("confirm-delete-yes")))
	b.WaitTrue(t, `document.querySelectorAll('#models-table .model-row').length === 1`)
	var mine struct {
		Finetunes []string `json:"finetunes"`
	}
	apiJSON(t, http.MethodGet, p.URL+"/api/v1/my_finetunes", nil, &mine)
	if slices.Contains(mine.Finetunes, gone) || !slices.Contains(mine.Finetunes, keep) {
		t.Fatalf("account lists %v after deleting %s", mine.Finetunes, gone)
	}
	b.Open(t, p.URL+"/models")
	b.WaitTrue(t, `document.querySelectorAll('#models-table .model-row').length === 1`)
	if n := Eval[int](t, b, `document.querySelectorAll('#models-table .model-row').length`); n != 1 {
		t.Fatalf("%d rows after reload", n)
	}

	// "Generate" opens the Generate tab with the model chosen.
	b.Do(t, chromedp.Click(chromedp.CSS(".model-generate")))
	b.WaitTrue(t, fmt.Sprintf(`document.querySelector('#model-select')?.value === %q`, keep))
	b.CheckConsole(t)
}
